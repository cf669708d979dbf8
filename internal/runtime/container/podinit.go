package container

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PodInitEnv, when set, turns this binary into a pod's init: pid 1 of the pod's shared pid
// namespace (NamespaceMode POD), which does nothing but reap orphans until it is killed.
// It stands where other runtimes run the pause container, so that no container of the pod
// is pid 1 and the namespace lives as long as the sandbox.
const PodInitEnv = "NANOKUBE_RUNTIME_PODINIT"

func init() {
	if d := os.Getenv(PodInitEnv); d != "" {
		os.Exit(podInitMain())
	}
}

func podInitMain() int {
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

// StartPodInit starts a pod init for the sandbox directory dir in a new pid namespace and
// returns its host pid. It outlives the runtime (own session), like the shims.
func StartPodInit(dir string) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), PodInitEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start pod init: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return cmd.Process.Pid, nil
}

// PodInitAlive reports whether pid is the pod init of dir.
func PodInitAlive(pid int, dir string) bool {
	if pid <= 0 {
		return false
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	return err == nil && strings.Contains(string(env), PodInitEnv+"="+dir+"\x00")
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
