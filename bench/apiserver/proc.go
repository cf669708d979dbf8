package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cleanups run at exit, also after a failure or an interrupt: they stop the servers this
// program started (by PID) and remove its temporary directories.
var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

func runCleanups() {
	cleanupMu.Lock()
	fs := cleanups
	cleanups = nil
	cleanupMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// tempDir makes a directory that is removed at exit.
func tempDir(name string) (string, error) {
	dir, err := os.MkdirTemp("", "nanokube-bench-"+name+"-")
	if err != nil {
		return "", err
	}
	atExit(func() { _ = os.RemoveAll(dir) })
	return dir, nil
}

// server is one `nanokube server` process.
type server struct {
	cmd        *exec.Cmd
	dir        string
	url        string
	kubeconfig string
	logPath    string
	started    time.Time
	done       chan struct{}
	stopOnce   sync.Once
}

type serverOptions struct {
	fsync bool
	port  int // 0: any free port
}

// startServer starts the binary on dir and waits for its "ready" line.
func startServer(ctx context.Context, bin, dir string, opts serverOptions) (*server, error) {
	// The API server and its etcd alone: the scheduler's and controllers' informers would
	// add their own copies of every pod to the process being measured.
	args := []string{"server", "--data-dir", dir, "--secure-port", strconv.Itoa(opts.port),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--disable-agent",
		"--disable-scheduler", "--disable-controller-manager", "--log-level", "warn"}
	if !opts.fsync {
		args = append(args, "--etcd-unsafe-no-fsync")
	}
	s := &server{dir: dir, kubeconfig: filepath.Join(dir, "admin.kubeconfig"), done: make(chan struct{})}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	s.logPath = logf.Name()
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stderr = logf
	// If this program dies without cleaning up, the kernel still stops the server.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	atExit(s.stop)
	trackPID(s.cmd.Process.Pid, true)
	go func() {
		_ = s.cmd.Wait()
		trackPID(s.cmd.Process.Pid, false)
		logf.Close()
		close(s.done)
	}()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "is ready at "); ok {
				select {
				case urlc <- strings.TrimSpace(u):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case s.url = <-urlc:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("server exited before it was ready: %s", s.logTail())
	case <-time.After(3 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("server not ready after 3m: %s", s.logTail())
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM to the server's PID and SIGKILL if it has not exited within 20s.
func (s *server) stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// etcdEndpoint is the embedded etcd's client socket.
func (s *server) etcdEndpoint() string {
	return "unix://" + filepath.Join(s.dir, "etcd", "client.sock")
}

// memory is what /proc/PID/status says about a process's resident memory, in bytes.
type memory struct{ rss, anon, file int64 }

func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			m.rss = n << 10
		case "RssAnon":
			m.anon = n << 10
		case "RssFile":
			m.file = n << 10
		}
	}
	if m.rss == 0 {
		return m, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
	return m, nil
}

// settledMemory waits for the process's RSS to stop moving (the GC and the scavenger have
// caught up with the start-up garbage): at least 5s, then until three one-second samples
// agree within 0.5%, at most 30s.
func settledMemory(pid int) (memory, error) {
	start := time.Now()
	var last memory
	stable := 0
	for {
		time.Sleep(time.Second)
		m, err := readMemory(pid)
		if err != nil {
			return m, err
		}
		if last.rss > 0 && abs(m.rss-last.rss)*200 < last.rss {
			stable++
		} else {
			stable = 0
		}
		last = m
		if time.Since(start) > 30*time.Second || (time.Since(start) >= 5*time.Second && stable >= 3) {
			return m, nil
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReadyz polls /readyz until it answers 200 and returns when it did.
func waitReadyz(ctx context.Context, port int, client *http.Client, done <-chan struct{}) (time.Time, error) {
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", port)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-done:
			return time.Time{}, errors.New("server exited")
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// selfCPU is the user+system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
