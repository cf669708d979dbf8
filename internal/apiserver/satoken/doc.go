// Package satoken signs and verifies service-account tokens: JWTs in the form kube-apiserver
// issues them through the TokenRequest API (ES256 or RS256, a "kid" derived from the public
// key, the "kubernetes.io" private claim naming the account and the pod, secret or node the
// token is bound to).
//
// It owns only the cryptography and the claim shapes. Whether the account and the bound
// object still exist — the part that makes a token revocable by deleting its pod — is checked
// by the API server, which holds the objects. Verify returns an error for every rejection;
// the caller answers 401 without saying why, and logs the reason.
package satoken
