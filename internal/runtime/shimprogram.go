package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nanokube/nanokube/internal/runtime/container"
	"github.com/nanokube/nanokube/internal/runtime/shimbin"
)

// shimProgram picks the program the runtime runs as shims and pod inits (see
// Config.ShimProgram). The embedded shim is preferred because each container then costs a
// process of a few MB that starts in a millisecond, not a re-execution of this whole binary;
// any failure to install or run it falls back to this binary, which works everywhere.
func shimProgram(ctx context.Context, cfg Config) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if cfg.ShimProgram != "" {
		if err := probeShim(ctx, cfg.ShimProgram); err != nil {
			return "", err
		}
		return cfg.ShimProgram, nil
	}
	if program, sum := shimbin.Embedded(); program != nil {
		path, err := shimbin.Install(filepath.Join(cfg.Root, "bin"), program, sum)
		if err == nil {
			err = probeShim(ctx, path)
		}
		if err == nil {
			cfg.Logger.Debug("using the embedded shim", "path", path)
			return path, nil
		}
		cfg.Logger.Warn("embedded shim unusable; re-executing this binary as the shim", "err", err)
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("shim program: %w", err)
	}
	return self, nil
}

// probeShim runs container.ProbeShim, retrying while the kernel reports the file busy: a
// process forked elsewhere in this binary while the program was being written holds a
// write descriptor to it until that process execs (golang/go#22315).
func probeShim(ctx context.Context, path string) error {
	for {
		err := container.ProbeShim(ctx, path)
		if !errors.Is(err, syscall.ETXTBSY) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}
