package container

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
	"github.com/nanokube/nanokube/internal/runtime/shim"
)

// DialAttach connects to the attach socket of the shim running bundle; the connection
// carries shim's frames (see shim.WriteFrame).
func DialAttach(bundle string) (net.Conn, error) {
	if !ShimAlive(bundle) {
		return nil, fmt.Errorf("container shim is not running: %w", errdefs.ErrFailedPrecondition)
	}
	dir, err := os.Open(bundle)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	// A bundle path can exceed the 108 bytes a socket address holds: reach the socket
	// through the directory's descriptor.
	c, err := net.DialTimeout("unix", filepath.Join(fmt.Sprintf("/proc/self/fd/%d", dir.Fd()), shim.AttachSocket), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("attach to container: %w", err)
	}
	return c, nil
}
