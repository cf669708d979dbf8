package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
)

// Config configures a Runtime.
type Config struct {
	// Root holds all state (see the package doc). Required, absolute.
	Root string
	// Socket is the unix socket the CRI services listen on. Required.
	Socket string
	// RegistryConfig is an optional mirrors/hosts file (see image.RegistryConfig).
	RegistryConfig string
	// CNIBinDir holds the CNI plugins; default /usr/lib/cni (Debian).
	CNIBinDir string
	// CNIConfDir holds network configs; default Root/cni/net.d. UpdateRuntimeConfig writes
	// the pod CIDR's bridge config there.
	CNIConfDir string
	// CNIBridge is the bridge the generated config uses; default "nk0".
	CNIBridge string
	// PodCIDR, if set, writes the CNI config at start as UpdateRuntimeConfig would, for a
	// runtime driven by a client that never hands one over (crictl, critest).
	PodCIDR string
	// NoMasquerade disables NAT of pod traffic leaving the pod CIDR.
	NoMasquerade bool
	// Runc is the runc binary; default "runc" from PATH.
	Runc string
	// ShimProgram is the program run as container shims and pod inits. Default: the
	// dedicated shim embedded in this binary, written under Root/bin, or, when none is
	// embedded (a plain go build) or it cannot run there, this binary itself.
	ShimProgram string
	// StreamAddress is where the Exec/Attach/PortForward streaming server listens;
	// default 127.0.0.1:0.
	StreamAddress string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns a copy of c with defaults filled in, or the first problem found.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Root == "" || !filepath.IsAbs(c.Root) {
		errs = append(errs, fmt.Errorf("root %q must be an absolute path", c.Root))
	}
	if c.Socket == "" {
		errs = append(errs, errors.New("socket path is required"))
	}
	if c.CNIBinDir == "" {
		c.CNIBinDir = "/usr/lib/cni"
	}
	if c.CNIConfDir == "" {
		c.CNIConfDir = filepath.Join(c.Root, "cni", "net.d")
	}
	if c.CNIBridge == "" {
		c.CNIBridge = "nk0"
	}
	if len(c.CNIBridge) > 15 {
		errs = append(errs, fmt.Errorf("bridge name %q is longer than 15 characters", c.CNIBridge))
	}
	if c.Runc == "" {
		c.Runc = "runc"
	}
	if p, err := exec.LookPath(c.Runc); err != nil {
		errs = append(errs, fmt.Errorf("runc binary: %w", err))
	} else {
		c.Runc = p
	}
	if c.StreamAddress == "" {
		c.StreamAddress = "127.0.0.1:0"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, errors.Join(errs...)
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}
