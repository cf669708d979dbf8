// Package serviceaccount keeps a ServiceAccount named "default" in every namespace that is not
// terminating, recreating it when it is deleted, as Kubernetes' serviceaccount controller does.
//
// It watches Namespaces and ServiceAccounts; its work queue holds namespace names and
// sync(ctx, namespace) creates the account when the cache lacks it. An AlreadyExists answer
// (the cache was behind) is success.
package serviceaccount
