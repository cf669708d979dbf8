package agent

import "context"

// RenewClientCertificateNow renews the node's client certificate at once, whatever its age.
func RenewClientCertificateNow(ctx context.Context, cfg JoinConfig, creds *Credentials) error {
	cfg = withDefaults(cfg)
	return renewClientCertificate(ctx, cfg, creds, credentialPaths(cfg.DataDir))
}
