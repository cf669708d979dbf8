package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/yaml"

	"github.com/nanokube/nanokube/internal/audit"
	"github.com/nanokube/nanokube/internal/pki"
)

// AuditWriter receives audit events (audit.Log writes them as JSON lines).
type AuditWriter interface {
	Write(ev *auditv1.Event) error
}

// maxAuditBody caps the request and response bodies an event carries; larger ones are
// recorded without the object (kube-apiserver's own request size limit is 3 MiB).
const maxAuditBody = 3 << 20

// auditRecord is one request's event in the making, shared through the request context
// with the handlers that add to it (authorization decision, impersonation).
type auditRecord struct {
	mu sync.Mutex
	ev auditv1.Event
}

type auditKey struct{}

// auditAnnotate adds an annotation to the request's audit event, if it is audited.
func auditAnnotate(ctx context.Context, key, value string) {
	if rec, ok := ctx.Value(auditKey{}).(*auditRecord); ok {
		rec.mu.Lock()
		if rec.ev.Annotations == nil {
			rec.ev.Annotations = map[string]string{}
		}
		rec.ev.Annotations[key] = value
		rec.mu.Unlock()
	}
}

// auditImpersonated records the user a request acts as.
func auditImpersonated(ctx context.Context, u pki.UserInfo) {
	if rec, ok := ctx.Value(auditKey{}).(*auditRecord); ok {
		rec.mu.Lock()
		rec.ev.ImpersonatedUser = auditUser(u)
		rec.mu.Unlock()
	}
}

// auditAuthorization records an authorization decision; the last one of a request (after
// its impersonation checks) is the request's own.
func auditAuthorization(ctx context.Context, allowed bool, reason string) {
	decision := "forbid"
	if allowed {
		decision = "allow"
	}
	auditAnnotate(ctx, "authorization.k8s.io/decision", decision)
	auditAnnotate(ctx, "authorization.k8s.io/reason", reason)
}

func auditUser(u pki.UserInfo) *authnv1.UserInfo {
	return &authnv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
}

// auditRequests records every request the policy selects, as kube-apiserver's audit filter
// does: after authentication (the policy matches the authenticated user), before
// impersonation and authorization, which add to the event through the request context.
func (s *Server) auditRequests(next http.Handler) http.Handler {
	if s.cfg.AuditPolicy == nil || s.cfg.AuditLog == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Audit-ID")
		if id == "" {
			id = string(uuid.NewUUID())
		}
		w.Header().Set("Audit-Id", id)

		u, ok := userFromContext(r.Context())
		switch {
		case r.Context().Value(failedAuthenticationKey{}) != nil:
			u = pki.UserInfo{} // credentials that did not authenticate: no user, as in Kubernetes
		case !ok:
			u = anonymousUser
		}
		req, isResource := parseRequest(r)
		attrs := audit.Attributes{User: u.Name, Groups: u.Groups, Path: r.URL.Path, ResourceRequest: isResource, Verb: strings.ToLower(r.Method)}
		if isResource {
			attrs.Verb, attrs.APIGroup, attrs.Resource, attrs.Subresource = req.verb, req.gv.Group, req.resource, req.subresource
			attrs.Namespace, attrs.Name = req.namespace, req.name
		}
		decision := s.cfg.AuditPolicy.Evaluate(attrs)
		if decision.Level == auditv1.LevelNone {
			next.ServeHTTP(w, r)
			return
		}

		rec := &auditRecord{ev: auditv1.Event{
			TypeMeta: metav1.TypeMeta{Kind: "Event", APIVersion: auditv1.SchemeGroupVersion.String()},
			Level:    decision.Level, AuditID: types.UID(id), RequestURI: r.URL.RequestURI(), Verb: attrs.Verb,
			User: *auditUser(u), SourceIPs: sourceIPs(r), UserAgent: r.UserAgent(),
			RequestReceivedTimestamp: metav1.NewMicroTime(time.Now()),
		}}
		if isResource {
			rec.ev.ObjectRef = &auditv1.ObjectReference{Resource: req.resource, Namespace: req.namespace, Name: req.name,
				APIGroup: req.gv.Group, APIVersion: req.gv.Version, Subresource: req.subresource}
		}
		emit := func(stage auditv1.Stage) {
			if decision.Omits(stage) {
				return
			}
			rec.mu.Lock()
			ev := rec.ev.DeepCopy()
			rec.mu.Unlock()
			ev.Stage, ev.StageTimestamp = stage, metav1.NewMicroTime(time.Now())
			if err := s.cfg.AuditLog.Write(ev); err != nil {
				s.log.Warn("audit log write failed", "auditID", id, "err", err)
			}
		}
		emit(auditv1.StageRequestReceived)

		// The request body is kept whole (it names the object a create makes, and is the
		// requestObject from Request level on) while the handler reads it.
		var body *cappedBuffer
		if r.Body != nil && r.Body != http.NoBody {
			body = &cappedBuffer{max: maxAuditBody}
			r.Body = teeReadCloser{io.TeeReader(r.Body, body), r.Body}
		}
		longRunning := isLongRunning(req, isResource)
		aw := &auditResponseWriter{ResponseWriter: w}
		aw.onStart = func(code int) {
			// Responses are kept for RequestResponse and failures (for their Status); the
			// body of a long-running request is a stream, never an object.
			aw.keep = code >= 400 || (decision.Level == auditv1.LevelRequestResponse && !longRunning)
			rec.mu.Lock()
			rec.ev.ResponseStatus = &metav1.Status{Code: int32(code)}
			rec.mu.Unlock()
			if longRunning {
				emit(auditv1.StageResponseStarted)
			}
		}

		defer func() {
			if v := recover(); v != nil {
				rec.mu.Lock()
				rec.ev.ResponseStatus = &metav1.Status{Code: http.StatusInternalServerError, Status: metav1.StatusFailure,
					Reason: metav1.StatusReasonInternalError, Message: fmt.Sprintf("APIServer panic'd: %v", v)}
				rec.mu.Unlock()
				emit(auditv1.StagePanic)
				panic(v)
			}
		}()
		next.ServeHTTP(aw, r.WithContext(context.WithValue(r.Context(), auditKey{}, rec)))
		aw.start(http.StatusOK) // a handler that wrote nothing answered 200

		rec.mu.Lock()
		s.completeAuditEvent(rec, decision, r, body, aw)
		rec.mu.Unlock()
		emit(auditv1.StageResponseComplete)
	})
}

type failedAuthenticationKey struct{}

// auditFailedAuthentication records the 401 answers to requests whose credentials did not
// authenticate, with an empty user (the policy's user and group rules do not match them).
func (s *Server) auditFailedAuthentication(unauthorized http.Handler) http.Handler {
	if s.cfg.AuditPolicy == nil || s.cfg.AuditLog == nil {
		return unauthorized
	}
	audited := s.auditRequests(unauthorized)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		audited.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), failedAuthenticationKey{}, true)))
	})
}

// completeAuditEvent fills in what the finished request tells: the object a create named,
// the request and response objects the level asks for, a failure's Status.
func (s *Server) completeAuditEvent(rec *auditRecord, d audit.Decision, r *http.Request, body *cappedBuffer, aw *auditResponseWriter) {
	ev := &rec.ev
	var reqJSON []byte
	if body != nil && !body.overflow {
		reqJSON = s.auditJSON(r.Header.Get("Content-Type"), body.Bytes())
	}
	if ev.ObjectRef != nil && reqJSON != nil && ev.ObjectRef.Name == "" && ev.Verb == "create" {
		var m struct {
			Metadata struct{ Name, Namespace string }
		}
		if json.Unmarshal(reqJSON, &m) == nil {
			ev.ObjectRef.Name = m.Metadata.Name
			if ev.ObjectRef.Namespace == "" {
				ev.ObjectRef.Namespace = m.Metadata.Namespace
			}
		}
	}
	if audit.Ordinal(d.Level) >= audit.Ordinal(auditv1.LevelRequest) && reqJSON != nil {
		ev.RequestObject = &runtime.Unknown{Raw: withoutManagedFields(reqJSON, d.OmitManagedFields)}
	}
	var respJSON []byte
	if aw.keep && !aw.body.overflow {
		respJSON = s.auditJSON(aw.Header().Get("Content-Type"), aw.body.Bytes())
	}
	if aw.code >= 400 && respJSON != nil {
		var st metav1.Status
		if json.Unmarshal(respJSON, &st) == nil && st.Kind == "Status" {
			ev.ResponseStatus = &metav1.Status{Status: st.Status, Message: st.Message, Reason: st.Reason, Details: st.Details, Code: st.Code}
		}
	}
	if d.Level == auditv1.LevelRequestResponse && respJSON != nil {
		ev.ResponseObject = &runtime.Unknown{Raw: withoutManagedFields(respJSON, d.OmitManagedFields)}
	}
}

// auditJSON returns a body as JSON, or nil if it is not an object in a known encoding.
func (s *Server) auditJSON(contentType string, b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == runtime.ContentTypeProtobuf:
		obj, _, err := s.codecs.factory.UniversalDeserializer().Decode(b, nil, nil)
		if err != nil {
			return nil
		}
		out, err := json.Marshal(obj)
		if err != nil {
			return nil
		}
		return out
	case strings.HasSuffix(mt, "yaml"):
		out, err := yaml.YAMLToJSON(b)
		if err != nil || !json.Valid(out) {
			return nil
		}
		return out
	default: // JSON and the JSON patch types
		if !json.Valid(b) {
			return nil
		}
		var c bytes.Buffer
		if json.Compact(&c, b) != nil {
			return nil
		}
		return c.Bytes()
	}
}

// withoutManagedFields drops metadata.managedFields from an object or a list's items.
func withoutManagedFields(b []byte, omit bool) []byte {
	if !omit {
		return b
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	strip := func(o map[string]any) {
		if md, ok := o["metadata"].(map[string]any); ok {
			delete(md, "managedFields")
		}
	}
	strip(m)
	if items, ok := m["items"].([]any); ok {
		for _, it := range items {
			if o, ok := it.(map[string]any); ok {
				strip(o)
			}
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return b
	}
	return out
}

// isLongRunning is kube-apiserver's long-running check: watches and proxies, and the
// attach, exec, log, port-forward and proxy subresources.
func isLongRunning(req request, isResource bool) bool {
	if !isResource {
		return false
	}
	switch req.verb {
	case "watch", "proxy":
		return true
	}
	switch req.subresource {
	case "attach", "exec", "log", "portforward", "proxy":
		return true
	}
	return false
}

// sourceIPs are the X-Forwarded-For addresses, then X-Real-Ip, then the peer, as in
// kube-apiserver.
func sourceIPs(r *http.Request) []string {
	var ips []string
	for _, part := range strings.Split(r.Header.Get("X-Forwarded-For"), ",") {
		if ip := net.ParseIP(strings.TrimSpace(part)); ip != nil {
			ips = append(ips, ip.String())
		}
	}
	if ip := net.ParseIP(strings.TrimSpace(r.Header.Get("X-Real-Ip"))); ip != nil {
		ips = append(ips, ip.String())
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && (len(ips) == 0 || ips[len(ips)-1] != ip.String()) {
		ips = append(ips, ip.String())
	}
	return ips
}

// auditResponseWriter notes the status code when the response starts and keeps the body.
type auditResponseWriter struct {
	http.ResponseWriter
	keep    bool
	body    cappedBuffer
	code    int
	onStart func(code int)
}

func (w *auditResponseWriter) start(code int) {
	if w.code == 0 {
		w.code = code
		if w.body.max == 0 {
			w.body.max = maxAuditBody
		}
		w.onStart(code)
	}
}

func (w *auditResponseWriter) WriteHeader(code int) {
	w.start(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditResponseWriter) Write(b []byte) (int, error) {
	w.start(http.StatusOK)
	if w.keep {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *auditResponseWriter) Flush() {
	w.start(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack starts the response of an upgraded connection (exec, attach, port-forward) as
// 101 Switching Protocols, then hands the connection over.
func (w *auditResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.start(http.StatusSwitchingProtocols)
	}
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *auditResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cappedBuffer keeps up to max bytes and notes whether more were offered.
type cappedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (c *cappedBuffer) Write(b []byte) (int, error) {
	if c.overflow || c.Len()+len(b) > c.max {
		c.overflow = true
		c.Reset()
		return len(b), nil
	}
	return c.Buffer.Write(b)
}

type teeReadCloser struct {
	io.Reader
	io.Closer
}
