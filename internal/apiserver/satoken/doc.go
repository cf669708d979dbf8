// Package satoken signs and verifies service-account tokens: JWTs in the form kube-apiserver
// issues them through the TokenRequest API (ES256 or RS256, a "kid" derived from the public
// key, the "kubernetes.io" private claim naming the account and the pod, secret or node the
// token is bound to), and the legacy long-lived tokens kube-controller-manager writes into
// Secrets of type kubernetes.io/service-account-token (issuer "kubernetes/serviceaccount",
// top-level "kubernetes.io/serviceaccount/..." claims, no expiry and no audience; a Verifier
// accepts them only after AcceptLegacy).
//
// It owns only the cryptography and the claim shapes. Whether the account and the bound
// object (or, for a legacy token, its Secret) still exist — the part that makes a token revocable by deleting its pod — is checked
// by the API server, which holds the objects. Verify returns an error for every rejection;
// the caller answers 401 without saying why, and logs the reason.
package satoken
