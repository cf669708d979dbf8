package shim

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// RunPodInit is a pod's init: pid 1 of the pod's shared pid namespace (NamespaceMode POD),
// which does nothing but reap orphans until it is told to stop. It stands where other
// runtimes run the pause container, so that no container of the pod is pid 1 and the
// namespace lives as long as the sandbox.
func RunPodInit() int {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE, syscall.SIGUSR1, syscall.SIGUSR2)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	for {
		select {
		case <-term:
			return 0
		case <-chld:
			for {
				var ws unix.WaitStatus
				if pid, _ := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 {
					break
				}
			}
		}
	}
}
