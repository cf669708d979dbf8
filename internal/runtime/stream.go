package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
	"github.com/nanokube/nanokube/internal/runtime/network"
)

// Streaming protocols served (SPDY): remote command v4 and port forward v1.
const (
	remoteCommandV4 = "v4.channel.k8s.io"
	portForwardV1   = "portforward.k8s.io"
	sessionTTL      = time.Minute
	streamWait      = 30 * time.Second
)

// session is one Exec or PortForward request waiting for its client to connect.
type session struct {
	kind    string // "exec" or "portforward"
	exec    *runtimeapi.ExecRequest
	sandbox string
	expires time.Time
}

// streamServer serves the Exec and PortForward sessions handed out by the CRI calls, one use
// per token, over SPDY as kubectl, client-go and crictl speak it.
type streamServer struct {
	r   *Runtime
	l   net.Listener
	srv *http.Server

	mu       sync.Mutex
	sessions map[string]session
}

func newStreamServer(r *Runtime, l net.Listener) *streamServer {
	s := &streamServer{r: r, l: l, sessions: map[string]session{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{token}", s.handleExec)
	mux.HandleFunc("/portforward/{token}", s.handlePortForward)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

func (s *streamServer) baseURL() string {
	if s == nil {
		return ""
	}
	return "http://" + s.l.Addr().String()
}

func (s *streamServer) serve() error {
	if err := s.srv.Serve(s.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *streamServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	_ = s.srv.Close()
}

func (s *streamServer) add(sess session) string {
	token := newID()[:32]
	sess.expires = time.Now().Add(sessionTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, old := range s.sessions {
		if time.Now().After(old.expires) {
			delete(s.sessions, t)
		}
	}
	s.sessions[token] = sess
	return token
}

func (s *streamServer) take(token, kind string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[token]
	delete(s.sessions, token)
	if !ok || sess.kind != kind || time.Now().After(sess.expires) {
		return session{}, false
	}
	return sess, true
}

// Exec implements CRI: it hands out a one-use streaming URL.
func (r *Runtime) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if err := r.requireRunning(c); err != nil {
		return nil, err
	}
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	if !req.GetStdout() && !req.GetStderr() && !req.GetStdin() {
		return nil, fmt.Errorf("exec needs one of stdin, stdout, stderr: %w", errdefs.ErrInvalidArgument)
	}
	if req.GetTty() && req.GetStderr() {
		return nil, fmt.Errorf("exec with a tty has no separate stderr: %w", errdefs.ErrInvalidArgument)
	}
	req.ContainerId = c.ID
	token := r.stream.add(session{kind: "exec", exec: req})
	return &runtimeapi.ExecResponse{Url: r.stream.baseURL() + "/exec/" + token}, nil
}

// PortForward implements CRI.
func (r *Runtime) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	s, err := r.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if s.nsPath(network.NetNS) == "" {
		// Host network: forwarding goes to the host's loopback.
		r.log.Debug("port-forward into a host-network pod", "sandbox", s.ID)
	}
	token := r.stream.add(session{kind: "portforward", sandbox: s.ID})
	return &runtimeapi.PortForwardResponse{Url: r.stream.baseURL() + "/portforward/" + token}, nil
}

// upgrade negotiates protocol and collects the client's streams until want says it has them.
func upgrade(w http.ResponseWriter, req *http.Request, protocol string) (httpstream.Connection, <-chan httpstream.Stream, bool) {
	if _, err := httpstream.Handshake(req, w, []string{protocol}); err != nil {
		return nil, nil, false
	}
	streams := make(chan httpstream.Stream, 16)
	conn := spdy.NewResponseUpgraderWithPings(30*time.Second).UpgradeResponse(w, req, func(st httpstream.Stream, _ <-chan struct{}) error {
		streams <- st
		return nil
	})
	if conn == nil {
		return nil, nil, false
	}
	conn.SetIdleTimeout(4 * time.Hour)
	return conn, streams, true
}

func (s *streamServer) handleExec(w http.ResponseWriter, req *http.Request) {
	sess, ok := s.take(req.PathValue("token"), "exec")
	if !ok {
		http.Error(w, "unknown or expired exec session", http.StatusNotFound)
		return
	}
	ex := sess.exec
	conn, streamCh, ok := upgrade(w, req, remoteCommandV4)
	if !ok {
		return
	}
	defer conn.Close()
	var errStream, stdin, stdout, stderr, resize httpstream.Stream
	want := 1
	for _, b := range []bool{ex.GetStdin(), ex.GetStdout(), ex.GetStderr() && !ex.GetTty(), ex.GetTty()} {
		if b {
			want++
		}
	}
	timeout := time.After(streamWait)
	for got := 0; got < want; {
		select {
		case st := <-streamCh:
			switch st.Headers().Get("streamType") {
			case "error":
				errStream = st
			case "stdin":
				stdin = st
			case "stdout":
				stdout = st
			case "stderr":
				stderr = st
			case "resize":
				resize = st
			}
			got++
		case <-timeout:
			s.r.log.Warn("exec client did not open its streams", "container", ex.GetContainerId())
			return
		case <-conn.CloseChan():
			return
		}
	}
	code, err := s.r.execStream(req.Context(), ex, stdin, stdout, stderr, resize)
	if errStream == nil {
		return
	}
	st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
	switch {
	case err != nil:
		st.Status, st.Message = metav1.StatusFailure, err.Error()
	case code != 0:
		st.Status, st.Reason = metav1.StatusFailure, "NonZeroExitCode"
		st.Message = fmt.Sprintf("command terminated with non-zero exit code: exit status %d", code)
		st.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: strconv.Itoa(code)}}}
	}
	b, _ := json.Marshal(st)
	_, _ = errStream.Write(b)
	errStream.Close()
}

// execStream runs an exec with the client's streams and returns its exit code.
func (r *Runtime) execStream(ctx context.Context, ex *runtimeapi.ExecRequest, stdin io.ReadCloser, stdout, stderr io.WriteCloser, resize io.Reader) (int, error) {
	c, err := r.getContainer(ex.GetContainerId())
	if err != nil {
		return 0, err
	}
	proc, err := r.execProcess(c, ex.GetCmd(), ex.GetTty())
	if err != nil {
		return 0, err
	}
	defer os.Remove(proc)
	if ex.GetTty() {
		return r.execTTY(ctx, c, proc, stdin, stdout, resize)
	}
	cmd := r.runc.ExecCommand(context.WithoutCancel(ctx), c.ID, proc, false, "")
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	err = cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode(), nil
	}
	return 0, err
}

// execTTY runs the exec on a pseudo-terminal. runc proxies the container's terminal to its
// own controlling terminal, so runc gets one: the slave side of a host pty whose master we
// copy to and from the client. A resize on our master reaches runc as SIGWINCH.
func (r *Runtime) execTTY(ctx context.Context, c *ctr, proc string, stdin io.Reader, stdout io.Writer, resize io.Reader) (int, error) {
	master, slave, err := openPty()
	if err != nil {
		return 0, err
	}
	defer master.Close()
	cmd := r.runc.ExecCommand(context.WithoutCancel(ctx), c.ID, proc, false, "")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		slave.Close()
		return 0, err
	}
	slave.Close()
	if resize != nil {
		go func() {
			dec := json.NewDecoder(resize)
			for {
				var sz struct{ Width, Height uint16 }
				if dec.Decode(&sz) != nil {
					return
				}
				_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
			}
		}()
	}
	if stdin != nil {
		go func() { _, _ = io.Copy(master, stdin) }()
	}
	copied := make(chan struct{})
	go func() {
		// Reading the master fails with EIO once runc, the last holder of the slave, exits.
		if stdout != nil {
			_, _ = io.Copy(stdout, master)
		} else {
			_, _ = io.Copy(io.Discard, master)
		}
		close(copied)
	}()
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode(), nil
	}
	return 0, err
}

// openPty returns a new pseudo-terminal's master and slave.
func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	sl, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty slave: %w", err)
	}
	return m, sl, nil
}

func (s *streamServer) handlePortForward(w http.ResponseWriter, req *http.Request) {
	sess, ok := s.take(req.PathValue("token"), "portforward")
	if !ok {
		http.Error(w, "unknown or expired port-forward session", http.StatusNotFound)
		return
	}
	sb, err := s.r.getSandbox(sess.sandbox)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	conn, streamCh, ok := upgrade(w, req, portForwardV1)
	if !ok {
		return
	}
	defer conn.Close()
	// Streams come in pairs (error, data) per request id.
	errStreams := map[string]httpstream.Stream{}
	pending := map[string]httpstream.Stream{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-conn.CloseChan():
			return
		case st := <-streamCh:
			id := st.Headers().Get("requestID")
			switch st.Headers().Get("streamType") {
			case "error":
				errStreams[id] = st
			case "data":
				pending[id] = st
			default:
				st.Reset()
				continue
			}
			if es, ok := errStreams[id]; ok {
				if ds, ok := pending[id]; ok {
					delete(errStreams, id)
					delete(pending, id)
					wg.Add(1)
					go func() {
						defer wg.Done()
						s.forward(sb, ds, es)
					}()
				}
			}
		}
	}
}

func (s *streamServer) forward(sb *sandbox, data, errStream httpstream.Stream) {
	defer data.Close()
	defer errStream.Close()
	port, err := strconv.ParseUint(data.Headers().Get("port"), 10, 16)
	if err != nil || port == 0 {
		fmt.Fprintf(errStream, "invalid port %q", data.Headers().Get("port"))
		return
	}
	target, err := dialInNetNS(sb.nsPath(network.NetNS), int(port))
	if err != nil {
		fmt.Fprintf(errStream, "port-forward to pod %s port %d: %v", sb.ID, port, err)
		return
	}
	defer target.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(target, data); closeWrite(target); done <- struct{}{} }()
	go func() { _, _ = io.Copy(data, target); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// dialInNetNS connects to localhost:port inside the network namespace at nsPath (the
// host's when empty). The socket is made on a thread that entered the namespace; that
// thread is never unlocked, so Go retires it.
func dialInNetNS(nsPath string, port int) (net.Conn, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if nsPath == "" {
		return net.DialTimeout("tcp", addr, 5*time.Second)
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter pod network: %w", err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		ch <- result{c, err}
	}()
	res := <-ch
	return res.c, res.err
}

// Attach is not served: container output is in the CRI log, and stdin is held by the shim.
func (r *Runtime) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if _, err := r.getContainer(req.GetContainerId()); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("attach is not implemented yet: %w", errdefs.ErrUnimplemented)
}

func nowNano() int64 { return time.Now().UnixNano() }
