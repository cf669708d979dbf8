package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
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
)

// Environment variables that select what the program does (see Main).
const (
	// ShimEnv names the bundle directory of the container this process is the shim of.
	ShimEnv = "NANOKUBE_RUNTIME_SHIM"
	// PodInitEnv names the sandbox directory of the pod this process is the init of.
	PodInitEnv = "NANOKUBE_RUNTIME_PODINIT"
	// ProbeEnv asks the program to print ProbeReply and exit, so the runtime can check that
	// a shim program it is about to use runs at all (noexec mounts, a wrong architecture).
	ProbeEnv = "NANOKUBE_RUNTIME_SHIM_PROBE"
)

// ProbeReply is what a shim program that speaks this package's contract prints for ProbeEnv.
const ProbeReply = "nanokube-shim contract 1"

// Files in a bundle directory.
const (
	ConfigFile  = "shim.json"
	ExitFile    = "exit.json"
	PidFile     = "shim.pid"
	InitPidFile = "init.pid"
	// LogFile receives the shim's own stderr (the runtime opens it).
	LogFile     = "shim.log"
	runcLogFile = "runc.log"
)

// Runc says which runc binary and state directory the shim drives. Its fields are those of
// container.Runc, so the runtime converts one into the other.
type Runc struct {
	Binary string
	Root   string
}

// Config is what the shim reads from ConfigFile in its bundle directory.
type Config struct {
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

// Exit is the record the shim leaves in ExitFile when the container's init exits.
type Exit struct {
	Code       int32     `json:"code"`
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Main runs the shim, the pod init or the probe if the environment asks for one, and
// returns the process's exit code and true; it returns false when the environment asks for
// none of them, and the caller goes on being whatever program it is.
func Main() (code int, ran bool) {
	if bundle := os.Getenv(ShimEnv); bundle != "" {
		return RunShim(bundle), true
	}
	if dir := os.Getenv(PodInitEnv); dir != "" {
		return RunPodInit(), true
	}
	if os.Getenv(ProbeEnv) != "" {
		fmt.Println(ProbeReply)
		return 0, true
	}
	return 0, false
}

// RunShim is the shim of the container in bundle; it returns once the container has
// exited and its exit record is written (or creating it failed).
func RunShim(bundle string) int {
	status := os.NewFile(3, "status")
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "shim:", err)
		if status != nil {
			fmt.Fprintln(status, err)
			status.Close()
		}
		return 1
	}
	var cfg Config
	b, err := os.ReadFile(filepath.Join(bundle, ConfigFile))
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
	if err := os.WriteFile(filepath.Join(bundle, PidFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
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

// oomKilled reports whether the kernel's OOM killer struck in the memory cgroup at path
// (a cgroupfs path as in the OCI spec), on cgroup v1 or v2.
func oomKilled(path string) bool {
	if path == "" {
		return false
	}
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", path, "memory.oom_control"),
		filepath.Join("/sys/fs/cgroup", path, "memory.events"),
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var n int
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "oom_kill %d", &n); err == nil && n > 0 {
				return true
			}
		}
	}
	return false
}
