package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
	"github.com/nanokube/nanokube/internal/runtime/shim"
)

// Exit is the record a shim leaves when the container's init exits.
type Exit = shim.Exit

// init turns any binary that links this package (nanokube, its tests) into a shim or pod
// init when the environment asks for one: that is how shims run when no dedicated shim
// program is embedded, and how shims started by such a binary keep their meaning.
func init() {
	if code, ran := shim.Main(); ran {
		os.Exit(code)
	}
}

// ReadExit returns the exit record in bundle, or an ErrNotFound error if the container has
// not exited (or its shim died without recording it).
func ReadExit(bundle string) (*Exit, error) {
	b, err := os.ReadFile(filepath.Join(bundle, shim.ExitFile))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("exit record: %w", errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var e Exit
	return &e, json.Unmarshal(b, &e)
}

// ProbeShim checks that program runs and speaks the shim contract of this runtime.
func ProbeShim(ctx context.Context, program string) error {
	cmd := exec.CommandContext(ctx, program)
	cmd.Env = append(os.Environ(), shim.ProbeEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("probe shim program %s: %w", program, err)
	}
	if got := strings.TrimSpace(string(out)); got != shim.ProbeReply {
		return fmt.Errorf("shim program %s answered %q, want %q", program, got, shim.ProbeReply)
	}
	return nil
}

// StartShim runs program (a shim program: the dedicated one or a binary linking this
// package) as the shim for bundle, which must hold config.json and shim.json, and returns
// once `runc create` has finished: the container exists, its init waits for Start.
func StartShim(ctx context.Context, program, bundle string) (pid int, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return 0, err
	}
	defer devnull.Close()
	logf, err := os.OpenFile(filepath.Join(bundle, shim.LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		w.Close()
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(program)
	cmd.Dir = bundle
	// The variable is also how ShimAlive recognises the process, whoever started it.
	cmd.Env = append(os.Environ(), shim.ShimEnv+"="+bundle)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, logf
	cmd.ExtraFiles = []*os.File{w}
	// Its own session: the shim must outlive the runtime and its signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("start shim: %w", err)
	}
	w.Close()
	pid = cmd.Process.Pid
	// The shim is reaped by us only if it fails early; a live shim is reparented when we exit.
	go func() { _ = cmd.Wait() }()
	done := make(chan struct{})
	var msg []byte
	go func() { msg, _ = io.ReadAll(r); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return 0, ctx.Err()
	}
	if s := strings.TrimSpace(string(msg)); s != "ok" {
		if s == "" {
			s = "shim exited without a word"
		}
		return 0, RuncError(s, errors.New("container shim failed"))
	}
	return pid, nil
}

// ShimAlive reports whether the shim recorded in bundle is still running.
func ShimAlive(bundle string) bool {
	b, err := os.ReadFile(filepath.Join(bundle, shim.PidFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return false
	}
	return unix.Kill(pid, 0) == nil && isOurShim(pid, bundle)
}

// ShimHandle refers to the running shim of one bundle through a pidfd, so that asking
// whether it still runs costs one poll and no file read, and a pid reused after it exits
// can never be taken for it. The zero value is not usable; Close releases the pidfd.
type ShimHandle struct {
	fd int
}

// OpenShim returns a handle on the shim recorded in bundle, or an error if the bundle
// records none or it no longer runs.
func OpenShim(bundle string) (*ShimHandle, error) {
	b, err := os.ReadFile(filepath.Join(bundle, shim.PidFile))
	if err != nil {
		return nil, fmt.Errorf("container shim: %w", errdefs.ErrNotFound)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("container shim pid %q: %w", b, errdefs.ErrNotFound)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("container shim %d: %w", pid, err)
	}
	h := &ShimHandle{fd: fd}
	// Checked after opening: while the pidfd's process lives its pid cannot be reused,
	// so a live process that carries our variable is the one the pidfd refers to.
	if !h.Alive() || !isOurShim(pid, bundle) {
		h.Close()
		return nil, fmt.Errorf("container shim %d is not running: %w", pid, errdefs.ErrNotFound)
	}
	return h, nil
}

// Alive reports whether the shim still runs: its pidfd becomes readable when it exits.
func (h *ShimHandle) Alive() bool {
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 0
	}
}

// Close releases the pidfd.
func (h *ShimHandle) Close() { _ = unix.Close(h.fd) }

// isOurShim tells our shim from a process that reused its pid, by the variable every shim
// program was started with, whichever nanokube version started it.
func isOurShim(pid int, bundle string) bool {
	return hasEnv(pid, shim.ShimEnv+"="+bundle)
}

func hasEnv(pid int, kv string) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	return err == nil && strings.Contains("\x00"+string(env), "\x00"+kv+"\x00")
}

// WaitExit blocks until the container in bundle has an exit record or ctx is done. It
// returns the record; if the shim is gone without one, an Exit with code 255.
func WaitExit(ctx context.Context, bundle string) (*Exit, error) {
	pid := 0
	if b, err := os.ReadFile(filepath.Join(bundle, shim.PidFile)); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	var pidfd int = -1
	if pid > 0 && isOurShim(pid, bundle) {
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			pidfd = fd
			defer unix.Close(fd)
		}
	}
	for {
		if e, err := ReadExit(bundle); err == nil {
			return e, nil
		}
		if pidfd < 0 {
			if pid > 0 && unix.Kill(pid, 0) == nil && isOurShim(pid, bundle) {
				// Could not open a pidfd: fall back to polling.
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			// One last look: the shim may have written the record as it exited.
			if e, err := ReadExit(bundle); err == nil {
				return e, nil
			}
			return &Exit{Code: 255, FinishedAt: time.Now()}, nil
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 50)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, err
		}
		if n > 0 {
			pidfd = -1 // exited: the loop reads the record or reports it lost
			pid = 0
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// ReopenLog asks the shim of bundle to reopen its log file.
func ReopenLog(bundle string) error {
	b, err := os.ReadFile(filepath.Join(bundle, shim.PidFile))
	if err != nil {
		return fmt.Errorf("container shim: %w", errdefs.ErrFailedPrecondition)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || !isOurShim(pid, bundle) {
		return fmt.Errorf("container shim is not running: %w", errdefs.ErrFailedPrecondition)
	}
	return unix.Kill(pid, unix.SIGUSR1)
}

// InitPid returns the host pid of the container's init as runc recorded it at create.
func InitPid(bundle string) (int, error) {
	b, err := os.ReadFile(filepath.Join(bundle, shim.InitPidFile))
	if err != nil {
		return 0, fmt.Errorf("container init pid: %w", errdefs.ErrNotFound)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
