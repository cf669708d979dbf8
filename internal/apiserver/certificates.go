package apiserver

import (
	"context"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// setRequester records who asked for a certificate: spec.username, uid and groups of a new
// CertificateSigningRequest are the requester's, whatever the client sent, so approvers can
// trust them.
func setRequester(ctx context.Context, obj runtime.Object) {
	csr, ok := obj.(*certificatesv1.CertificateSigningRequest)
	if !ok {
		return
	}
	u := userFrom(ctx)
	csr.Spec.Username, csr.Spec.UID = u.Name, u.UID
	csr.Spec.Groups = append([]string(nil), u.Groups...)
	csr.Spec.Extra = nil
}
