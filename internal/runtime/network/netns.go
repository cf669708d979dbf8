package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Namespace kinds a sandbox can hold.
const (
	NetNS = "net"
	IPCNS = "ipc"
	UTSNS = "uts"
)

var nsFlags = map[string]int{NetNS: unix.CLONE_NEWNET, IPCNS: unix.CLONE_NEWIPC, UTSNS: unix.CLONE_NEWUTS}

// CreateNamespaces makes new namespaces of the given kinds and pins each at dir/<kind> with
// a bind mount, so they live without a process. hostname is set in a new UTS namespace.
// On error nothing is left behind.
func CreateNamespaces(dir string, kinds []string, hostname string) error {
	if len(kinds) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	flags := 0
	for _, k := range kinds {
		f, ok := nsFlags[k]
		if !ok {
			return fmt.Errorf("unknown namespace kind %q", k)
		}
		flags |= f
		if err := os.WriteFile(filepath.Join(dir, k), nil, 0o600); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() {
		// The thread that unshares is never unlocked, so Go retires it when this goroutine
		// ends instead of reusing it in the new namespaces.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(flags); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
				if err := unix.Sethostname([]byte(hostname)); err != nil {
					return fmt.Errorf("sethostname %q: %w", hostname, err)
				}
			}
			tid := unix.Gettid()
			for _, k := range kinds {
				src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, k)
				if err := unix.Mount(src, filepath.Join(dir, k), "", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("pin %s namespace: %w", k, err)
				}
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		_ = RemoveNamespaces(dir, kinds)
		return err
	}
	return nil
}

// RemoveNamespaces unpins and deletes the namespace files; missing ones are fine.
func RemoveNamespaces(dir string, kinds []string) error {
	var errs []error
	for _, k := range kinds {
		p := filepath.Join(dir, k)
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
