// Package pki owns the cluster's certificates and credentials: the CA, the
// API server's serving certificate, client certificates, kubeconfig files and
// the static bearer-token file.
//
// On-disk layout (Ensure):
//
//	DIR/            0700
//	  ca.crt        CA certificate, CN "nanokube-ca", 10 years
//	  ca.key        0600
//	  apiserver.crt serving certificate for the API server
//	  apiserver.key 0600
//	  admin.crt     client certificate, CN "kubernetes-admin", O "system:masters"
//	  admin.key     0600
//
// Contracts:
//   - Ensure is idempotent. The CA is created once and never replaced; it is an
//     error for ca.crt to exist without a matching ca.key. A leaf certificate is
//     reissued only when it is missing, unreadable, not valid under the CA now,
//     or (serving) lacks a requested SAN; otherwise the files are left alone.
//     One process owns a directory: concurrent Ensure calls on the same
//     directory are not coordinated.
//   - Every file is written to a temporary name and renamed into place, so a
//     reader sees either the old or the new content, never a partial file.
//     Keys are written before their certificates.
//   - Keys are ECDSA P-256, encoded as PKCS #8 "PRIVATE KEY" PEM blocks.
//   - The serving certificate is presented with the CA appended to its chain: a joining
//     agent holds only the CA's SHA-256 (from its JoinToken) and pins the CA it finds there.
//   - A TokenAuthenticator is immutable and safe for concurrent use; to pick up
//     edits to the file, load it again. Slices returned in a UserInfo belong to
//     the caller.
//
// Only the standard library's crypto is used; client-go's clientcmd writes
// kubeconfigs so that they are exactly what kubectl and client-go expect.
package pki
