package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

type startupResult struct {
	runs []time.Duration
}

// benchStartup times process start to the first 200 from /readyz on a fresh data directory
// (new certificates, new etcd member, fsync on as by default), runs times.
func benchStartup(ctx context.Context, bin string, runs int) (startupResult, error) {
	var r startupResult
	client := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // only the timing matters
			DisableKeepAlives: true,
		},
	}
	root, err := tempDir("startup")
	if err != nil {
		return r, err
	}
	for i := range runs {
		port, err := freePort()
		if err != nil {
			return r, err
		}
		dir := filepath.Join(root, strconv.Itoa(i))
		cmd := exec.Command(bin, "server", "--data-dir", dir, "--secure-port", strconv.Itoa(port),
			"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--disable-agent", "--log-level", "error")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		logf, err := os.Create(dir + ".log")
		if err != nil {
			return r, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		done := make(chan struct{})
		start := time.Now()
		if err := cmd.Start(); err != nil {
			logf.Close()
			return r, err
		}
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		atExit(stop)
		trackPID(cmd.Process.Pid, true)
		go func() { _ = cmd.Wait(); trackPID(cmd.Process.Pid, false); logf.Close(); close(done) }()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		ready, err := waitReadyz(wctx, port, client, done)
		cancel()
		stop()
		if err != nil {
			log, _ := os.ReadFile(dir + ".log")
			return r, fmt.Errorf("run %d: /readyz: %w\n%s", i, err, log)
		}
		r.runs = append(r.runs, ready.Sub(start))
		_ = os.RemoveAll(dir)
	}
	return r, nil
}

func (r startupResult) median() time.Duration {
	s := slices.Clone(r.runs)
	slices.Sort(s)
	return s[len(s)/2]
}
