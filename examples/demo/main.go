// Command demo is the quickstart's web server: it answers GET / with a line naming the pod
// (its hostname) and its version, GET /healthz with "ok" for probes, logs each request to
// stdout (so `kubectl logs` shows them) and exits cleanly on SIGTERM, as a pod should.
//
// Standard library only, so hack/demo-image can build it static (CGO_ENABLED=0) into an image
// of one binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set at build time (-ldflags "-X main.version=1") to the image's tag.
var version = "dev"

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stdout, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, logger, *addr); err != nil {
		logger.Error("demo failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, addr string) error {
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: handler(logger, host), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("demo serving", "addr", addr, "pod", host, "version", version)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// The kubelet waits terminationGracePeriodSeconds after SIGTERM: finish the requests in
	// flight well within it, then exit 0.
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("demo stopped")
	return nil
}

func handler(logger *slog.Logger, host string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s (demo version %s)\n", host, version)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return logRequests(logger, mux)
}

// logRequests logs one line per request, with the status written.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"remote", r.RemoteAddr, "duration", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
