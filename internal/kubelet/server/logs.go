package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/logs"
	"k8s.io/klog/v2"
)

// logQuery is a parsed /containerLogs query.
type logQuery struct {
	previous bool
	opts     logs.LogOptions
}

// parseLogQuery reads the pod log options the API server passes through; now anchors
// sinceSeconds.
func parseLogQuery(q url.Values, now time.Time) (logQuery, error) {
	var lq logQuery
	var errs []error
	flag := func(name string, dst *bool) {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("invalid %s %q: must be true or false", name, v))
			}
			*dst = b
		}
	}
	number := func(name string, least int64) *int64 {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < least {
			errs = append(errs, fmt.Errorf("invalid %s %q: must be an integer of at least %d", name, v, least))
			return nil
		}
		return &n
	}
	flag("follow", &lq.opts.Follow)
	flag("previous", &lq.previous)
	flag("timestamps", &lq.opts.Timestamp)
	lq.opts.TailLines = number("tailLines", 0)
	lq.opts.LimitBytes = number("limitBytes", 1)
	sinceSeconds := number("sinceSeconds", 1)
	switch sinceTime := q.Get("sinceTime"); {
	case sinceTime != "" && sinceSeconds != nil:
		errs = append(errs, errors.New("at most one of sinceTime or sinceSeconds may be specified"))
	case sinceTime != "":
		t, err := time.Parse(time.RFC3339, sinceTime)
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid sinceTime %q: must be RFC 3339", sinceTime))
		}
		lq.opts.Since = t
	case sinceSeconds != nil:
		lq.opts.Since = now.Add(-time.Duration(*sinceSeconds) * time.Second)
	}
	return lq, errors.Join(errs...)
}

func (s *Server) handleContainerLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	pod, name, err := s.requestContainer(r)
	if err != nil {
		writeError(w, err)
		return
	}
	lq, err := parseLogQuery(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	rt := s.host.Runtime()
	c, err := logContainer(ctx, rt, pod, name, lq.previous)
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := rt.ContainerStatus(ctx, c.Id, false)
	if err != nil {
		writeError(w, err)
		return
	}
	path := st.GetStatus().GetLogPath()
	if path == "" {
		writeError(w, errorf(http.StatusBadRequest, "container %q in pod %q has no log file", name, pod.Name))
		return
	}
	if _, err := os.Stat(path); err != nil {
		writeError(w, errorf(http.StatusBadRequest, "container %q in pod %q has no logs: %v", name, pod.Name, err))
		return
	}

	w.Header().Set("Content-Type", "text/plain")
	out := &flushWriter{w: w, rc: http.NewResponseController(w)}
	if lq.opts.Follow {
		// Answer now: a quiet container's follower should not wait for headers.
		out.started = true
		w.WriteHeader(http.StatusOK)
		_ = out.rc.Flush()
	}
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(s.log.Handler()))
	if err := logs.ReadLogs(ctx, path, c.Id, &lq.opts, rt, out, out); err != nil && r.Context().Err() == nil {
		if !out.started {
			writeError(w, errorf(http.StatusBadRequest, "%v", err))
			return
		}
		s.log.Warn("reading a container log", "pod", pod.Namespace+"/"+pod.Name, "container", name, "err", err)
	}
}

// logContainer picks the instance whose log a request reads. As the kubelet does, a newest
// instance that has not started yet shows its predecessor's log, and previous is the instance
// before the newest.
func logContainer(ctx context.Context, rt internalapi.RuntimeService, pod *v1.Pod, name string, previous bool) (*runtimeapi.Container, error) {
	cs, err := instances(ctx, rt, pod, name)
	if err != nil {
		return nil, err
	}
	if previous {
		if len(cs) < 2 {
			return nil, errorf(http.StatusBadRequest, "previous terminated container %q in pod %q not found", name, pod.Name)
		}
		return cs[1], nil
	}
	for _, c := range cs[:min(2, len(cs))] {
		if c.State != runtimeapi.ContainerState_CONTAINER_CREATED {
			return c, nil
		}
	}
	return nil, errorf(http.StatusBadRequest, "container %q in pod %q is waiting to start: ContainerCreating", name, pod.Name)
}

// flushWriter sends every write to the client at once.
type flushWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.started = true
	n, err := f.w.Write(p)
	if err != nil {
		return n, err
	}
	return n, f.rc.Flush()
}
