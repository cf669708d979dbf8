// Package serviceaccounttoken is kube-controller-manager's serviceaccount-token-controller
// (the "tokens controller"): it fills Secrets of type kubernetes.io/service-account-token,
// which users create to get a long-lived token for the account named by their
// kubernetes.io/service-account.name annotation.
//
// For such a Secret whose account exists it records the account's UID in the
// kubernetes.io/service-account.uid annotation and fills data["token"] (a legacy JWT signed
// with the service-account key, see satoken.Signer.SignLegacy), data["ca.crt"] (the root CA
// bundle, when one is configured) and data["namespace"]. A token already present is never
// re-signed, so filling is idempotent and a user-supplied token stays. A Secret whose account
// does not exist, or exists with another UID than the annotation records (it was deleted and
// recreated), is deleted, as is every token Secret of a deleted account: the API server
// accepts a legacy token only while its Secret exists, so deleting the Secret is what revokes
// it. A Secret without the account annotation is left alone (the API server's validation
// refuses to create one).
//
// It watches Secrets and ServiceAccounts through the shared informers; its work queue holds
// Secret keys (namespace/name). Account events enqueue the account's token Secrets, found
// through an index on the annotation. Because a Secret and its account are often created
// together, a Secret whose account the cache lacks (or holds with another UID) is checked
// against the API server before it is deleted.
//
// The controller needs the service-account private key (--service-account-private-key-file);
// without one the manager does not start it.
package serviceaccounttoken
