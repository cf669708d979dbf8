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
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/websocket"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/nanokube/nanokube/internal/runtime/container"
	"github.com/nanokube/nanokube/internal/runtime/errdefs"
	"github.com/nanokube/nanokube/internal/runtime/network"
	"github.com/nanokube/nanokube/internal/runtime/shim"
)

// Streaming protocols served: remote command v4 (SPDY and WebSocket) and v5 (WebSocket),
// port forward v1 (SPDY, WebSocket, and SPDY tunnelled through a WebSocket).
const (
	remoteCommandV5 = "v5.channel.k8s.io"
	remoteCommandV4 = "v4.channel.k8s.io"
	portForwardV1   = "portforward.k8s.io"
	sessionTTL      = time.Minute
	streamWait      = 30 * time.Second
)

// session is one Exec, Attach or PortForward request waiting for its client to connect.
type session struct {
	kind    string // "exec" or "portforward"
	exec    *runtimeapi.ExecRequest
	attach  *runtimeapi.AttachRequest
	sandbox string
	ports   []int32
	expires time.Time
}

// streamServer serves the Exec, Attach and PortForward sessions handed out by the CRI calls,
// one use per token, over SPDY or WebSocket as kubectl, client-go and crictl speak them.
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
	mux.HandleFunc("/attach/{token}", s.handleAttach)
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
	token := r.stream.add(session{kind: "portforward", sandbox: s.ID, ports: req.GetPort()})
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

// streamOptions are the streams a remote command (exec or attach) asked for.
type streamOptions struct{ stdin, stdout, stderr, tty bool }

// remoteStreams are a remote command's client streams, over SPDY or WebSocket. A nil
// stream was not asked for.
type remoteStreams struct {
	stdin          io.ReadCloser
	stdout, stderr io.WriteCloser
	resize         io.Reader
	errStream      io.WriteCloser
	close          func()
}

// writeStatus reports the command's outcome on the error stream as a v4+ Status.
func (rs *remoteStreams) writeStatus(code int, err error) {
	if rs.errStream == nil {
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
	_, _ = rs.errStream.Write(b)
	rs.errStream.Close()
}

// openRemoteCommand upgrades the request to the remote command protocol the client speaks:
// WebSocket (v5.channel.k8s.io, v4.channel.k8s.io and their base64 variants) or SPDY
// (v4.channel.k8s.io).
func (s *streamServer) openRemoteCommand(w http.ResponseWriter, req *http.Request, opts streamOptions) (*remoteStreams, bool) {
	if wsstream.IsWebSocketRequest(req) {
		return openWebSocketCommand(w, req, opts)
	}
	conn, streamCh, ok := upgrade(w, req, remoteCommandV4)
	if !ok {
		return nil, false
	}
	rs := &remoteStreams{close: func() { conn.Close() }}
	want := 1
	for _, b := range []bool{opts.stdin, opts.stdout, opts.stderr && !opts.tty, opts.tty} {
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
				rs.errStream = st
			case "stdin":
				rs.stdin = st
			case "stdout":
				rs.stdout = st
			case "stderr":
				rs.stderr = st
			case "resize":
				rs.resize = st
			}
			got++
		case <-timeout:
			s.r.log.Warn("streaming client did not open its streams", "url", req.URL.Path)
			conn.Close()
			return nil, false
		case <-conn.CloseChan():
			conn.Close()
			return nil, false
		}
	}
	return rs, true
}

// WebSocket channel numbers of the remote command protocol.
const (
	wsStdin = iota
	wsStdout
	wsStderr
	wsError
	wsResize
)

func openWebSocketCommand(w http.ResponseWriter, req *http.Request, opts streamOptions) (*remoteStreams, bool) {
	ch := func(want bool, t wsstream.ChannelType) wsstream.ChannelType {
		if want {
			return t
		}
		return wsstream.IgnoreChannel
	}
	channels := []wsstream.ChannelType{
		wsStdin:  ch(opts.stdin, wsstream.ReadChannel),
		wsStdout: ch(opts.stdout, wsstream.WriteChannel),
		wsStderr: ch(opts.stderr && !opts.tty, wsstream.WriteChannel),
		wsError:  wsstream.WriteChannel,
		wsResize: ch(opts.tty, wsstream.ReadChannel),
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		remoteCommandV5:                   {Binary: true, Channels: channels},
		"v5.base64.channel.k8s.io":        {Binary: false, Channels: channels},
		remoteCommandV4:                   {Binary: true, Channels: channels},
		"v4.base64.channel.k8s.io":        {Binary: false, Channels: channels},
		wsstream.ChannelWebSocketProtocol: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(4 * time.Hour)
	_, streams, err := conn.Open(w, req)
	if err != nil {
		return nil, false
	}
	rs := &remoteStreams{errStream: streams[wsError], close: func() { conn.Close() }}
	if opts.stdin {
		rs.stdin = streams[wsStdin]
	}
	if opts.stdout {
		rs.stdout = streams[wsStdout]
	}
	if opts.stderr && !opts.tty {
		rs.stderr = streams[wsStderr]
	}
	if opts.tty {
		rs.resize = streams[wsResize]
	}
	// An empty frame on the lowest writable channel tells the client the streams are up.
	switch {
	case rs.stdout != nil:
		_, _ = rs.stdout.Write(nil)
	case rs.stderr != nil:
		_, _ = rs.stderr.Write(nil)
	default:
		_, _ = rs.errStream.Write(nil)
	}
	return rs, true
}

func (s *streamServer) handleExec(w http.ResponseWriter, req *http.Request) {
	sess, ok := s.take(req.PathValue("token"), "exec")
	if !ok {
		http.Error(w, "unknown or expired exec session", http.StatusNotFound)
		return
	}
	ex := sess.exec
	rs, ok := s.openRemoteCommand(w, req, streamOptions{stdin: ex.GetStdin(), stdout: ex.GetStdout(), stderr: ex.GetStderr(), tty: ex.GetTty()})
	if !ok {
		return
	}
	defer rs.close()
	code, err := s.r.execStream(req.Context(), ex, rs.stdin, rs.stdout, rs.stderr, rs.resize)
	rs.writeStatus(code, err)
}

func (s *streamServer) handleAttach(w http.ResponseWriter, req *http.Request) {
	sess, ok := s.take(req.PathValue("token"), "attach")
	if !ok {
		http.Error(w, "unknown or expired attach session", http.StatusNotFound)
		return
	}
	at := sess.attach
	rs, ok := s.openRemoteCommand(w, req, streamOptions{stdin: at.GetStdin(), stdout: at.GetStdout(), stderr: at.GetStderr(), tty: at.GetTty()})
	if !ok {
		return
	}
	defer rs.close()
	rs.writeStatus(0, s.r.attachStream(at, rs))
}

// attachStream connects the client's streams to the container's shim until the container
// exits or the client goes away.
func (r *Runtime) attachStream(at *runtimeapi.AttachRequest, rs *remoteStreams) error {
	c, err := r.getContainer(at.GetContainerId())
	if err != nil {
		return err
	}
	conn, err := container.DialAttach(c.dir)
	if err != nil {
		return err
	}
	defer conn.Close()
	var wmu sync.Mutex
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return shim.WriteFrame(conn, typ, p)
	}
	if rs.stdin != nil && c.config.GetStdin() {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := rs.stdin.Read(buf)
				if n > 0 && send(shim.FrameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					_ = send(shim.FrameStdinClose, nil)
					return
				}
			}
		}()
	}
	if rs.resize != nil {
		go func() {
			dec := json.NewDecoder(rs.resize)
			for {
				var sz struct{ Width, Height uint16 }
				if dec.Decode(&sz) != nil {
					return
				}
				p := []byte{byte(sz.Width >> 8), byte(sz.Width), byte(sz.Height >> 8), byte(sz.Height)}
				if send(shim.FrameResize, p) != nil {
					return
				}
			}
		}()
	}
	for {
		typ, p, err := shim.ReadFrame(conn)
		if err != nil {
			return nil // the container exited, or the shim went away
		}
		var out io.Writer
		switch typ {
		case shim.FrameStdout:
			if rs.stdout != nil {
				out = rs.stdout
			}
		case shim.FrameStderr:
			if rs.stderr != nil {
				out = rs.stderr
			} else if at.GetTty() && rs.stdout != nil {
				out = rs.stdout
			}
		}
		if out != nil {
			if _, err := out.Write(p); err != nil {
				return nil // the client went away
			}
		}
	}
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
	defer removeExecFiles(proc)
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
	switch {
	case wsstream.IsWebSocketRequestWithTunnelingProtocol(req):
		s.portForwardTunnel(w, req, sb)
	case wsstream.IsWebSocketRequest(req):
		s.portForwardWebSocket(w, req, sb, sess.ports)
	default:
		conn, streamCh, ok := upgrade(w, req, portForwardV1)
		if !ok {
			return
		}
		defer conn.Close()
		s.servePortForward(sb, conn, streamCh)
	}
}

// servePortForward pairs the client's SPDY streams (error, data) by request id and forwards
// each pair to its port in the pod until the connection closes.
func (s *streamServer) servePortForward(sb *sandbox, conn httpstream.Connection, streamCh <-chan httpstream.Stream) {
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
						defer ds.Close()
						defer es.Close()
						port, err := strconv.ParseUint(ds.Headers().Get("port"), 10, 16)
						if err != nil || port == 0 {
							fmt.Fprintf(es, "invalid port %q", ds.Headers().Get("port"))
							return
						}
						s.forward(sb, int(port), ds, es)
					}()
				}
			}
		}
	}
}

// portForwardTunnel serves SPDY tunnelled through a WebSocket ("SPDY/3.1+portforward.k8s.io"),
// which kubectl and client-go use when they port-forward over WebSockets.
func (s *streamServer) portForwardTunnel(w http.ResponseWriter, req *http.Request, sb *sandbox) {
	const proto = "SPDY/3.1+" + portForwardV1
	websocket.Server{
		Handshake: func(cfg *websocket.Config, _ *http.Request) error {
			for _, p := range cfg.Protocol {
				if strings.TrimSpace(p) == proto {
					cfg.Protocol = []string{proto}
					return nil
				}
			}
			return fmt.Errorf("no supported tunnelling protocol in %v", cfg.Protocol)
		},
		Handler: func(ws *websocket.Conn) {
			ws.PayloadType = websocket.BinaryFrame
			streams := make(chan httpstream.Stream, 16)
			conn, err := spdy.NewServerConnectionWithPings(ws, func(st httpstream.Stream, _ <-chan struct{}) error {
				streams <- st
				return nil
			}, 30*time.Second)
			if err != nil {
				return
			}
			defer conn.Close()
			conn.SetIdleTimeout(4 * time.Hour)
			s.servePortForward(sb, conn, streams)
		},
	}.ServeHTTP(w, req)
}

// portForwardWebSocket serves the WebSocket port-forward protocol: the ports come as
// "port" query parameters (or from the CRI request); each port has a data channel and an
// error channel, each of which starts with the port number (2 bytes, little endian).
func (s *streamServer) portForwardWebSocket(w http.ResponseWriter, req *http.Request, sb *sandbox, fromCRI []int32) {
	var ports []int
	for _, p := range req.URL.Query()["port"] {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			http.Error(w, fmt.Sprintf("invalid port %q", p), http.StatusBadRequest)
			return
		}
		ports = append(ports, int(n))
	}
	if len(ports) == 0 {
		for _, p := range fromCRI {
			ports = append(ports, int(p))
		}
	}
	if len(ports) == 0 {
		http.Error(w, "port-forward needs at least one port", http.StatusBadRequest)
		return
	}
	channels := make([]wsstream.ChannelType, 0, 2*len(ports))
	for range ports {
		channels = append(channels, wsstream.ReadWriteChannel, wsstream.WriteChannel)
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		"":                                {Binary: true, Channels: channels},
		portForwardV1:                     {Binary: true, Channels: channels},
		remoteCommandV4:                   {Binary: true, Channels: channels},
		"v4.base64.channel.k8s.io":        {Binary: false, Channels: channels},
		wsstream.ChannelWebSocketProtocol: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(4 * time.Hour)
	_, streams, err := conn.Open(w, req)
	if err != nil {
		return
	}
	defer conn.Close()
	var wg sync.WaitGroup
	for i, port := range ports {
		data, errs := streams[2*i], streams[2*i+1]
		prefix := []byte{byte(port), byte(port >> 8)}
		_, _ = data.Write(prefix)
		_, _ = errs.Write(prefix)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.forward(sb, port, data, errs)
		}()
	}
	wg.Wait()
}

func (s *streamServer) forward(sb *sandbox, port int, data io.ReadWriter, errStream io.Writer) {
	target, err := dialInNetNS(sb.nsPath(network.NetNS), port)
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

// Attach implements CRI: it hands out a one-use streaming URL to the container's stdio,
// which the container's shim serves (see shim.AttachSocket).
func (r *Runtime) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if err := r.requireRunning(c); err != nil {
		return nil, err
	}
	if !req.GetStdout() && !req.GetStderr() && !req.GetStdin() {
		return nil, fmt.Errorf("attach needs one of stdin, stdout, stderr: %w", errdefs.ErrInvalidArgument)
	}
	if req.GetStdin() && !c.config.GetStdin() {
		return nil, fmt.Errorf("container %s was not created with stdin: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	req.ContainerId = c.ID
	req.Tty = c.config.GetTty()
	token := r.stream.add(session{kind: "attach", attach: req})
	return &runtimeapi.AttachResponse{Url: r.stream.baseURL() + "/attach/" + token}, nil
}

func nowNano() int64 { return time.Now().UnixNano() }
