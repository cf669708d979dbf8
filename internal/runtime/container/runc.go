package container

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// Runc runs the runc binary against one state directory.
type Runc struct {
	Binary string // path to runc
	Root   string // runc --root
}

func (r Runc) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.Binary, append([]string{"--root", r.Root}, args...)...)
	cmd.WaitDelay = 0
	return cmd
}

func (r Runc) run(ctx context.Context, args ...string) error {
	out, err := r.command(ctx, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("runc %s: %w", args[0], RuncError(strings.TrimSpace(string(out)), err))
	}
	return nil
}

// runcErrorClasses maps what runc says to the runtime's error classes, most specific first.
var runcErrorClasses = []struct {
	substr string
	class  error
}{
	{"container does not exist", errdefs.ErrNotFound},
	{"does not exist", errdefs.ErrNotFound},
	{"executable file not found", errdefs.ErrInvalidArgument},
	{"no such file or directory", errdefs.ErrInvalidArgument},
	{"not a directory", errdefs.ErrInvalidArgument},
	{"is a directory", errdefs.ErrInvalidArgument},
	{"invalid argument", errdefs.ErrInvalidArgument},
	{"container with id exists", errdefs.ErrAlreadyExists},
	{"already exists", errdefs.ErrAlreadyExists},
	{"permission denied", errdefs.ErrPermissionDenied},
	{"operation not permitted", errdefs.ErrPermissionDenied},
	{"cannot allocate memory", errdefs.ErrResourceExhausted},
	{"resource temporarily unavailable", errdefs.ErrResourceExhausted},
	{"no space left on device", errdefs.ErrResourceExhausted},
	{"cannot start a container that has stopped", errdefs.ErrFailedPrecondition},
	{"container not running", errdefs.ErrFailedPrecondition},
	{"is not running", errdefs.ErrFailedPrecondition},
	{"cannot start an already running container", errdefs.ErrFailedPrecondition},
	{"container is paused", errdefs.ErrFailedPrecondition},
}

// RuncError turns runc's message (its output or last logged error) into an error that
// carries the matching class, so the CRI edge returns a meaningful gRPC code; cause is
// kept when no class matches.
func RuncError(msg string, cause error) error {
	low := strings.ToLower(msg)
	for _, c := range runcErrorClasses {
		if strings.Contains(low, c.substr) {
			return fmt.Errorf("%s: %w", msg, c.class)
		}
	}
	if msg == "" {
		return cause
	}
	return fmt.Errorf("%s: %w", msg, cause)
}

// Start starts a created container.
func (r Runc) Start(ctx context.Context, id string) error { return r.run(ctx, "start", id) }

// Kill sends sig to the container's init (or to all its processes).
func (r Runc) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	return r.run(ctx, append(args, id, fmt.Sprint(int(sig)))...)
}

// Delete removes the container's runc state (killing it with force).
func (r Runc) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	return r.run(ctx, append(args, id)...)
}

// State is runc's view of a container.
type State struct {
	Status string `json:"status"` // created, running, stopped, paused
	Pid    int    `json:"pid"`
}

// State returns runc's state of id.
func (r Runc) State(ctx context.Context, id string) (*State, error) {
	var stderr bytes.Buffer
	cmd := r.command(ctx, "state", id)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("runc state %s: %s: %w", id, strings.TrimSpace(stderr.String()), errdefs.ErrNotFound)
	}
	var s State
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ExecPidFile is where ExecCommand has runc record the host pid of the process in
// processJSON; the caller removes it with processJSON.
func ExecPidFile(processJSON string) string { return strings.TrimSuffix(processJSON, ".json") + ".pid" }

// ExecCommand returns the command that runs the process described in processJSON (a file)
// inside id; the caller wires its stdio and runs it. Cancelling ctx kills the process itself,
// not only runc: runc exec cannot forward SIGKILL, and a process it started would otherwise
// outlive the call (runc records the process's host pid in ExecPidFile(processJSON)).
func (r Runc) ExecCommand(ctx context.Context, id, processJSON string, tty bool, consoleSocket string) *exec.Cmd {
	pidFile := ExecPidFile(processJSON)
	args := []string{"exec", "--process", processJSON, "--pid-file", pidFile}
	if tty {
		args = append(args, "--tty", "--console-socket", consoleSocket)
	}
	cmd := r.command(ctx, append(args, id)...)
	cmd.Cancel = func() error {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				// runc exec reaps the process and exits with its status.
				return syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		// Not started yet: stopping runc stops the start.
		return cmd.Process.Kill()
	}
	return cmd
}

// Pids lists the host pids of the container's processes.
func (r Runc) Pids(ctx context.Context, id string) ([]int, error) {
	out, err := r.command(ctx, "ps", "--format", "json", id).Output()
	if err != nil {
		return nil, fmt.Errorf("runc ps %s: %w", id, err)
	}
	var pids []int
	err = json.Unmarshal(out, &pids)
	return pids, err
}
