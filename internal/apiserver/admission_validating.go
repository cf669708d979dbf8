package apiserver

import (
	"context"
	"net/http"

	corev1 "k8s.io/api/core/v1"

	"k8s.io/apimachinery/pkg/runtime"
)

// Admission runs in Kubernetes' order: the mutating plugins (admitDefaults) before the
// object's validation, the validating ones (admitValidating) after it, and ResourceQuota,
// which charges the namespace's quotas, last (admitCreate), just before the write.

type warningsKey struct{}

// withWarnings lets admission plugins deep in a request add Warning response headers.
func withWarnings(ctx context.Context, w http.ResponseWriter) context.Context {
	return context.WithValue(ctx, warningsKey{}, w)
}

// warn adds a Warning header to the response of the request ctx belongs to, if any.
func warn(ctx context.Context, msg string) {
	if w, ok := ctx.Value(warningsKey{}).(http.ResponseWriter); ok {
		addWarning(w, msg)
	}
}

// admitValidating runs the validating admission plugins on a create (old is nil) or an
// update of subresource sub: LimitRanger's checks, then PodSecurity, then (updates only)
// ResourceQuota's check of what an update adds.
func (s *Server) admitValidating(ctx context.Context, rs *resourceStore, sub string, obj, old runtime.Object) error {
	if rs.res.GroupVersion.Group == "" && sub == "" {
		if err := s.admitLimitRanges(ctx, rs, obj, old); err != nil {
			return err
		}
	}
	if err := s.admitPodSecurity(ctx, rs, sub, obj, old); err != nil {
		return err
	}
	if old != nil && sub == "" {
		switch obj.(type) {
		case *corev1.Service, *corev1.PersistentVolumeClaim:
			return s.checkQuotaUpdate(ctx, rs, obj, old)
		}
	}
	return nil
}
