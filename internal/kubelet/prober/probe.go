package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilexec "k8s.io/utils/exec"
)

// Result is the outcome of a probe.
type Result int

const (
	// Unknown: the probe has not run yet, or could not be run (a bad port, no handler).
	Unknown Result = iota
	Success
	Failure
)

func (r Result) String() string {
	switch r {
	case Success:
		return "Success"
	case Failure:
		return "Failure"
	}
	return "Unknown"
}

// Execer runs a command in a container; the CRI client (k8s.io/cri-api/pkg/apis.RuntimeService)
// satisfies it. A command that exits non-zero is reported as an error that is a
// k8s.io/utils/exec.ExitError, with the output still returned.
type Execer interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error)
}

// kubeVersion is the major.minor in the User-Agent of probes and hooks, as the kubelet of
// that version sends it.
const kubeVersion = "1.32"

// maxOutput bounds the exec output and HTTP body kept for event messages, as the kubelet's does.
const maxOutput = 10 << 10

// outcome is one probe attempt as the manager needs it.
type outcome struct {
	result Result
	output string
	// warning marks a success that the kubelet reports with a ProbeWarning event: an HTTP
	// redirect to another host, which is not followed.
	warning bool
}

// Probe runs one attempt of probe p against container c of pod, whose IP is podIP and whose
// runtime ID is containerID. The string is what the kubelet puts in the event message after
// "<Kind> probe failed: " (the command output, "HTTP probe failed with statuscode: 500", the
// dial error, ...). Unknown means the probe could not be run; the string then says why.
func Probe(ctx context.Context, ex Execer, p *v1.Probe, pod *v1.Pod, c *v1.Container, podIP, containerID string) (Result, string) {
	o := probe(ctx, ex, p, pod, c, podIP, containerID)
	return o.result, o.output
}

func probe(ctx context.Context, ex Execer, p *v1.Probe, pod *v1.Pod, c *v1.Container, podIP, containerID string) outcome {
	timeout := time.Duration(orDefault(p.TimeoutSeconds, 1)) * time.Second
	switch {
	case p.Exec != nil:
		return probeExec(ctx, ex, containerID, expandCommand(p.Exec.Command, c.Env), timeout)
	case p.HTTPGet != nil:
		req, err := newHTTPRequest(ctx, p.HTTPGet, c, podIP, "probe")
		if err != nil {
			return outcome{result: Unknown, output: err.Error()}
		}
		return probeHTTP(newHTTPClient(timeout), req)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return outcome{result: Unknown, output: err.Error()}
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		return probeTCP(ctx, net.JoinHostPort(host, strconv.Itoa(port)), timeout)
	case p.GRPC != nil:
		var service string
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		return probeGRPC(ctx, net.JoinHostPort(podIP, strconv.Itoa(int(p.GRPC.Port))), service, timeout)
	}
	return outcome{result: Unknown, output: fmt.Sprintf("missing probe handler for %s:%s", podDesc(pod), c.Name)}
}

func probeExec(ctx context.Context, ex Execer, containerID string, cmd []string, timeout time.Duration) outcome {
	stdout, stderr, err := ex.ExecSync(ctx, containerID, cmd, timeout)
	output := slices.Concat(stdout, stderr)
	if len(output) > maxOutput {
		output = output[:maxOutput]
	}
	var exit utilexec.ExitError
	switch {
	case err == nil:
		return outcome{result: Success, output: string(output)}
	case errors.As(err, &exit):
		if exit.ExitStatus() == 0 {
			return outcome{result: Success, output: string(output)}
		}
		return outcome{result: Failure, output: string(output)}
	default:
		// A timeout, or the runtime could not run the command: the container is not
		// answering, which counts as a failure (the kubelet's ExecProbeTimeout behaviour).
		return outcome{result: Failure, output: err.Error()}
	}
}

// newHTTPRequest builds the GET of an httpGet probe or hook; purpose names it in the
// User-Agent ("probe", "lifecycle").
func newHTTPRequest(ctx context.Context, a *v1.HTTPGetAction, c *v1.Container, podIP, purpose string) (*http.Request, error) {
	port, err := resolvePort(a.Port, c)
	if err != nil {
		return nil, err
	}
	host := a.Host
	if host == "" {
		host = podIP
	}
	scheme := strings.ToLower(string(a.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	u, err := url.Parse(a.Path)
	if err != nil {
		// A path that does not parse is passed along as is, as the kubelet does.
		u = &url.URL{Path: a.Path}
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for _, h := range a.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header.Set("User-Agent", "kube-"+purpose+"/"+kubeVersion)
	}
	if _, ok := req.Header["Accept"]; !ok {
		req.Header.Set("Accept", "*/*")
	} else if req.Header.Get("Accept") == "" {
		req.Header.Del("Accept")
	}
	req.Host = req.Header.Get("Host")
	return req, nil
}

// newHTTPClient makes the client of probes and hooks; timeout 0 means none.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			// Containers serve self-signed certificates; the kubelet has nothing to verify
			// them against.
			TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
			DisableKeepAlives:  true,
			DisableCompression: true,
			Proxy:              nil, // the pod is reached directly, whatever the kubelet's env says
			DialContext:        dial,
		},
		// Redirects are followed only to the same host, so a probe cannot be pointed
		// elsewhere by the container.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
}

func probeHTTP(client *http.Client, req *http.Request) outcome {
	res, err := client.Do(req)
	if err != nil {
		return outcome{result: Failure, output: err.Error()}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxOutput))
	if err != nil {
		return outcome{result: Failure, output: err.Error()}
	}
	switch {
	case res.StatusCode >= http.StatusOK && res.StatusCode < http.StatusMultipleChoices:
		return outcome{result: Success, output: string(b)}
	case res.StatusCode >= http.StatusMultipleChoices && res.StatusCode < http.StatusBadRequest:
		return outcome{result: Success, warning: true, output: "Probe terminated redirects, Response body: " + string(b)}
	}
	// The body stays out of the message: it may hold anything the container put there.
	return outcome{result: Failure, output: fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode)}
}

func probeTCP(ctx context.Context, addr string, timeout time.Duration) outcome {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return outcome{result: Failure, output: err.Error()}
	}
	_ = conn.Close()
	return outcome{result: Success}
}

func probeGRPC(ctx context.Context, addr, service string, timeout time.Duration) outcome {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	failure := func(format string, args ...any) outcome {
		return outcome{result: Failure, output: fmt.Sprintf(format, args...)}
	}
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithUserAgent("kube-probe/"+kubeVersion),
		// The probe API has no TLS settings.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		}))
	if err != nil {
		return failure("error: failed to connect service at %q: %+v", addr, err)
	}
	defer conn.Close()
	// Like the kubelet's blocking dial: keep trying to connect until the timeout.
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			return failure("timeout: failed to connect service %q within %v: %+v", addr, timeout, ctx.Err())
		}
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		switch st, _ := status.FromError(err); st.Code() {
		case codes.Unimplemented:
			return failure("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", st.Message())
		case codes.DeadlineExceeded:
			return failure("timeout: health rpc did not complete within %v", timeout)
		}
		return failure("error: health rpc probe failed: %+v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return failure("service unhealthy (responded with %q)", resp.GetStatus().String())
	}
	return outcome{result: Success, output: "service healthy"}
}

// dial connects for tcpSocket, httpGet and grpc. Probes open a connection every few seconds
// per container; a short linger keeps their closed sockets from piling up in TIME_WAIT, as
// the kubelet's probe dialer does.
func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(1)
	}
	return conn, err
}

// resolvePort turns a probe's port into a number, looking a name up in the container's ports
// and, failing that, reading it as a number.
func resolvePort(p intstr.IntOrString, c *v1.Container) (int, error) {
	port := p.IntValue()
	if p.Type == intstr.String {
		i := slices.IndexFunc(c.Ports, func(cp v1.ContainerPort) bool { return cp.Name == p.StrVal })
		if i >= 0 {
			port = int(c.Ports[i].ContainerPort)
		} else {
			var err error
			if port, err = strconv.Atoi(p.StrVal); err != nil {
				return 0, err
			}
		}
	}
	if port <= 0 || port > 65535 {
		return 0, fmt.Errorf("invalid port number: %v", port)
	}
	return port, nil
}

// expandCommand expands $(VAR) references in an exec probe's command from the container's
// literal env values, as the kubelet does: an undefined $(VAR) stays as written and $$ is a
// literal $.
func expandCommand(cmd []string, env []v1.EnvVar) []string {
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	out := make([]string, len(cmd))
	for i, s := range cmd {
		var b strings.Builder
		for len(s) > 0 {
			j := strings.IndexByte(s, '$')
			if j < 0 || j == len(s)-1 {
				b.WriteString(s)
				break
			}
			b.WriteString(s[:j])
			s = s[j+1:]
			switch end := strings.IndexByte(s, ')'); {
			case s[0] == '$':
				b.WriteByte('$')
				s = s[1:]
			case s[0] == '(' && end > 0:
				if v, ok := vars[s[1:end]]; ok {
					b.WriteString(v)
				} else {
					b.WriteString("$" + s[:end+1])
				}
				s = s[end+1:]
			default:
				b.WriteByte('$')
			}
		}
		out[i] = b.String()
	}
	return out
}

func orDefault(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

// podDesc names a pod in messages the way the kubelet does.
func podDesc(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}
