package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/proxy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
)

// streamQuery is the stdin, stdout, stderr and tty of an exec or attach request.
type streamQuery struct{ stdin, stdout, stderr, tty bool }

// parseStreamQuery reads the stream flags ("1" from the kubelet's own clients, "true" from
// client-go's parameter codec).
func parseStreamQuery(q url.Values) (streamQuery, error) {
	var sq streamQuery
	for name, dst := range map[string]*bool{"stdin": &sq.stdin, "stdout": &sq.stdout, "stderr": &sq.stderr, "tty": &sq.tty} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return sq, errorf(http.StatusBadRequest, "invalid %s %q: must be true or false", name, v)
			}
			*dst = b
		}
	}
	// A terminal has no separate stderr; the kubelet drops it rather than fail.
	if sq.tty {
		sq.stderr = false
	}
	if !sq.stdin && !sq.stdout && !sq.stderr {
		return sq, errorf(http.StatusBadRequest, "you must specify at least 1 of stdin, stdout, stderr")
	}
	return sq, nil
}

func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	s.serveRemoteCommand(w, r, func(c *runtimeapi.Container, sq streamQuery) (string, error) {
		cmd := r.URL.Query()["command"]
		if len(cmd) == 0 {
			return "", errorf(http.StatusBadRequest, "you must specify a command")
		}
		resp, err := s.host.Runtime().Exec(r.Context(), &runtimeapi.ExecRequest{
			ContainerId: c.Id, Cmd: cmd, Tty: sq.tty, Stdin: sq.stdin, Stdout: sq.stdout, Stderr: sq.stderr})
		if err != nil {
			return "", err
		}
		return resp.Url, nil
	})
}

func (s *Server) handleAttach(w http.ResponseWriter, r *http.Request) {
	s.serveRemoteCommand(w, r, func(c *runtimeapi.Container, sq streamQuery) (string, error) {
		resp, err := s.host.Runtime().Attach(r.Context(), &runtimeapi.AttachRequest{
			ContainerId: c.Id, Tty: sq.tty, Stdin: sq.stdin, Stdout: sq.stdout, Stderr: sq.stderr})
		if err != nil {
			return "", err
		}
		return resp.Url, nil
	})
}

// serveRemoteCommand finds the request's running container, has open ask the runtime for a
// streaming URL, and proxies the request there.
func (s *Server) serveRemoteCommand(w http.ResponseWriter, r *http.Request, open func(*runtimeapi.Container, streamQuery) (string, error)) {
	if !httpstream.IsUpgradeRequest(r) {
		writeError(w, errorf(http.StatusBadRequest, "Upgrade request required"))
		return
	}
	pod, name, err := s.requestContainer(r)
	if err != nil {
		writeError(w, err)
		return
	}
	sq, err := parseStreamQuery(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	c, err := runningContainer(r.Context(), s.host.Runtime(), pod, name)
	if err != nil {
		writeError(w, err)
		return
	}
	u, err := open(c, sq)
	if err != nil {
		writeError(w, err)
		return
	}
	s.proxyStream(w, r, u)
}

func (s *Server) handlePortForward(w http.ResponseWriter, r *http.Request) {
	if !httpstream.IsUpgradeRequest(r) {
		writeError(w, errorf(http.StatusBadRequest, "Upgrade request required"))
		return
	}
	pod, err := s.requestPod(r)
	if err != nil {
		writeError(w, err)
		return
	}
	// SPDY clients name their ports per stream; WebSocket clients in the query.
	var ports []int32
	for _, p := range r.URL.Query()["port"] {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			writeError(w, errorf(http.StatusBadRequest, "invalid port %q", p))
			return
		}
		ports = append(ports, int32(n))
	}
	sb, err := readySandbox(r.Context(), s.host.Runtime(), pod)
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.host.Runtime().PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: sb.Id, Port: ports})
	if err != nil {
		writeError(w, err)
		return
	}
	s.proxyStream(w, r, resp.Url)
}

// proxyStream hands the client's upgrade request, protocol headers and all, to the runtime's
// streaming server at rawURL and copies bytes both ways until either side closes.
func (s *Server) proxyStream(w http.ResponseWriter, r *http.Request, rawURL string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		writeError(w, fmt.Errorf("runtime streaming URL %q: %w", rawURL, err))
		return
	}
	defer s.trackStream(r)()
	h := proxy.NewUpgradeAwareHandler(u, nil, false, true, streamResponder{s})
	h.ServeHTTP(w, r)
}

// streamResponder answers proxy failures that happen before the upgrade.
type streamResponder struct{ s *Server }

func (p streamResponder) Error(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		code = int(st.Status().Code)
	}
	p.s.log.Warn("proxying a stream to the runtime", "path", r.URL.Path, "err", err)
	http.Error(w, err.Error(), code)
}
