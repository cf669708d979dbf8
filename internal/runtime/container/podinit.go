package container

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanokube/nanokube/internal/runtime/shim"
)

// StartPodInit runs program (see StartShim) as the pod init for the sandbox directory dir
// in a new pid namespace and returns its host pid. It outlives the runtime (own session),
// like the shims.
func StartPodInit(program, dir string) (int, error) {
	cmd := exec.Command(program)
	cmd.Dir = "/"
	// The variable is also how PodInitAlive recognises the process.
	cmd.Env = append(os.Environ(), shim.PodInitEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start pod init: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return cmd.Process.Pid, nil
}

// PodInitAlive reports whether pid is the pod init of dir.
func PodInitAlive(pid int, dir string) bool {
	return pid > 0 && hasEnv(pid, shim.PodInitEnv+"="+dir)
}

// StopPodInit kills the pod init of dir (and with it anything left in its pid namespace)
// and waits for it to be gone.
func StopPodInit(ctx context.Context, pid int, dir string) error {
	if !PodInitAlive(pid, dir) {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil // gone already
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return fmt.Errorf("kill pod init %d: %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for PodInitAlive(pid, dir) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("pod init %d did not exit", pid)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		_, _ = unix.Poll(fds, 50)
	}
	return nil
}
