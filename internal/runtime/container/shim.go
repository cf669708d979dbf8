package container

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// ShimEnv, when set in the environment, turns this binary into a container shim for the
// bundle directory it names (see init).
const ShimEnv = "NANOKUBE_RUNTIME_SHIM"

// Files in a bundle directory.
const (
	ShimConfigFile = "shim.json"
	ExitFile       = "exit.json"
	ShimPidFile    = "shim.pid"
	InitPidFile    = "init.pid"
	runcLogFile    = "runc.log"
	shimLogFile    = "shim.log"
)

// ShimConfig is what the shim reads from its bundle directory.
type ShimConfig struct {
	ID      string `json:"id"`
	Runc    Runc   `json:"runc"`
	LogPath string `json:"logPath,omitempty"`
	Stdin   bool   `json:"stdin,omitempty"`
	// StdinOnce closes the container's stdin when the first attached client closes its own.
	StdinOnce bool `json:"stdinOnce,omitempty"`
	Terminal  bool `json:"terminal,omitempty"`
	// CgroupsPath is the container's cgroup (as in the OCI spec), read for OOM kills.
	CgroupsPath string `json:"cgroupsPath,omitempty"`
}

// Exit is the record the shim leaves when the container's init exits.
type Exit struct {
	Code       int32     `json:"code"`
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
}

// ReadExit returns the exit record in bundle, or an ErrNotFound error if the container has
// not exited (or its shim died without recording it).
func ReadExit(bundle string) (*Exit, error) {
	b, err := os.ReadFile(filepath.Join(bundle, ExitFile))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("exit record: %w", errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var e Exit
	return &e, json.Unmarshal(b, &e)
}

func init() {
	if bundle := os.Getenv(ShimEnv); bundle != "" {
		os.Exit(shimMain(bundle))
	}
}

// StartShim launches the shim for bundle (which must hold config.json and shim.json) and
// returns once `runc create` has finished: the container exists, its init waits for Start.
func StartShim(ctx context.Context, bundle string) (pid int, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
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
	logf, err := os.OpenFile(filepath.Join(bundle, shimLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		w.Close()
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(self)
	cmd.Dir = bundle
	cmd.Env = append(os.Environ(), ShimEnv+"="+bundle)
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

// shimMain runs in the re-executed shim process.
func shimMain(bundle string) int {
	status := os.NewFile(3, "status")
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "shim:", err)
		if status != nil {
			fmt.Fprintln(status, err)
			status.Close()
		}
		return 1
	}
	var cfg ShimConfig
	b, err := os.ReadFile(filepath.Join(bundle, ShimConfigFile))
	if err != nil {
		return fail(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fail(err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("set subreaper: %w", err))
	}
	// Catch SIGCHLD and reap only after we know the container's pid.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	reopen := make(chan os.Signal, 1)
	signal.Notify(reopen, syscall.SIGUSR1)

	logw, err := openLog(cfg.LogPath)
	if err != nil {
		return fail(fmt.Errorf("open log %s: %w", cfg.LogPath, err))
	}
	al, err := net.Listen("unix", AttachSocket)
	if err != nil {
		return fail(fmt.Errorf("attach socket: %w", err))
	}
	hub := newAttachHub(al)
	pidFile := filepath.Join(bundle, InitPidFile)
	args := []string{"--root", cfg.Runc.Root, "--log", filepath.Join(bundle, runcLogFile),
		"--log-format", "json", "create", "--bundle", bundle, "--pid-file", pidFile}
	var copying sync.WaitGroup
	var startCopy func()
	if cfg.Terminal {
		// runc hands the pty master over the console socket; the container's stdio is the
		// pty's slave side, and output comes as one stream.
		_ = os.Remove(consoleSocket)
		cl, err := net.ListenUnix("unix", &net.UnixAddr{Name: consoleSocket, Net: "unix"})
		if err != nil {
			return fail(fmt.Errorf("console socket: %w", err))
		}
		type result struct {
			f   *os.File
			err error
		}
		got := make(chan result, 1)
		go func() { f, err := receiveConsole(cl); got <- result{f, err} }()
		cmd := exec.Command(cfg.Runc.Binary, append(args, "--console-socket", consoleSocket, cfg.ID)...)
		runErr := cmd.Run()
		cl.Close()
		_ = os.Remove(consoleSocket)
		if runErr != nil {
			return fail(fmt.Errorf("runc create: %s", lastRuncError(filepath.Join(bundle, runcLogFile), runErr)))
		}
		var res result
		select {
		case res = <-got:
		case <-time.After(10 * time.Second):
			res.err = errors.New("runc sent no console")
		}
		if res.err != nil {
			return fail(res.err)
		}
		master := res.f
		if cfg.Stdin {
			hub.stdin = master
			// A terminal cannot be half-closed: end-of-input is ^D.
			hub.closeIn = sync.OnceFunc(func() {
				if cfg.StdinOnce {
					_, _ = master.Write([]byte{4})
				}
			})
		}
		hub.resize = func(w, h uint16) {
			_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: h, Col: w})
		}
		startCopy = func() {
			copying.Add(1)
			go func() { defer copying.Done(); logw.copyLines("stdout", master, hub.tee(FrameStdout)) }()
		}
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		var stdinR, stdinW *os.File
		if cfg.Stdin {
			if stdinR, stdinW, err = os.Pipe(); err != nil {
				return fail(err)
			}
		}
		cmd := exec.Command(cfg.Runc.Binary, append(args, cfg.ID)...)
		if stdinR != nil {
			cmd.Stdin = stdinR
		}
		cmd.Stdout, cmd.Stderr = outW, errW
		if err := cmd.Run(); err != nil {
			return fail(fmt.Errorf("runc create: %s", lastRuncError(filepath.Join(bundle, runcLogFile), err)))
		}
		outW.Close()
		errW.Close()
		if stdinR != nil {
			stdinR.Close()
			// Held open until an attached client closes it (StdinOnce), so the container
			// does not see EOF on its own.
			hub.stdin = stdinW
			hub.closeIn = sync.OnceFunc(func() {
				if cfg.StdinOnce {
					stdinW.Close()
				}
			})
		}
		startCopy = func() {
			copying.Add(2)
			go func() { defer copying.Done(); logw.copyLines("stdout", outR, hub.tee(FrameStdout)) }()
			go func() { defer copying.Done(); logw.copyLines("stderr", errR, hub.tee(FrameStderr)) }()
		}
	}
	pb, err := os.ReadFile(pidFile)
	if err != nil {
		return fail(err)
	}
	initPid, err := strconv.Atoi(strings.TrimSpace(string(pb)))
	if err != nil {
		return fail(fmt.Errorf("pid file: %w", err))
	}
	if err := os.WriteFile(filepath.Join(bundle, ShimPidFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return fail(err)
	}
	fmt.Fprintln(status, "ok")
	status.Close()

	go hub.serve()
	startCopy()
	go func() {
		for range reopen {
			if err := logw.reopen(); err != nil {
				fmt.Fprintln(os.Stderr, "shim: reopen log:", err)
			}
		}
	}()

	exit := Exit{Code: 255}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// No children left and the init was never seen: record an unknown exit.
			exit.FinishedAt = time.Now()
			break
		}
		if pid != initPid {
			continue
		}
		exit.FinishedAt = time.Now()
		switch {
		case ws.Exited():
			exit.Code = int32(ws.ExitStatus())
		case ws.Signaled():
			exit.Code, exit.Signal = 128+int32(ws.Signal()), int(ws.Signal())
		}
		// The cgroup outlives the init until the runtime deletes the container.
		exit.OOMKilled = oomKilled(cfg.CgroupsPath)
		break
	}
	// The pipes close when the last process holding them exits; don't wait forever for
	// daemons that escaped the container's pid namespace.
	drained := make(chan struct{})
	go func() { copying.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
	}
	logw.close()
	hub.finish()
	eb, _ := json.Marshal(exit)
	tmp := filepath.Join(bundle, ExitFile+".tmp")
	if err := os.WriteFile(tmp, eb, 0o600); err == nil {
		_ = os.Rename(tmp, filepath.Join(bundle, ExitFile))
	}
	return 0
}

// lastRuncError picks the last error runc logged, which says more than its exit status.
func lastRuncError(path string, fallback error) string {
	f, err := os.Open(path)
	if err != nil {
		return fallback.Error()
	}
	defer f.Close()
	msg := fallback.Error()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && (rec.Level == "error" || rec.Level == "fatal") {
			msg = rec.Msg
		}
	}
	return msg
}

// ShimAlive reports whether the shim recorded in bundle is still running.
func ShimAlive(bundle string) bool {
	b, err := os.ReadFile(filepath.Join(bundle, ShimPidFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return false
	}
	return unix.Kill(pid, 0) == nil && isOurShim(pid, bundle)
}

func isOurShim(pid int, bundle string) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(env), ShimEnv+"="+bundle+"\x00")
}

// WaitExit blocks until the container in bundle has an exit record or ctx is done. It
// returns the record; if the shim is gone without one, an Exit with code 255.
func WaitExit(ctx context.Context, bundle string) (*Exit, error) {
	pid := 0
	if b, err := os.ReadFile(filepath.Join(bundle, ShimPidFile)); err == nil {
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
	b, err := os.ReadFile(filepath.Join(bundle, ShimPidFile))
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
	b, err := os.ReadFile(filepath.Join(bundle, InitPidFile))
	if err != nil {
		return 0, fmt.Errorf("container init pid: %w", errdefs.ErrNotFound)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
