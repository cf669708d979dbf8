package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	rbacregistry "github.com/nanokube/nanokube/internal/apiserver/registry/rbac"
	"github.com/nanokube/nanokube/internal/storage"
)

// maxBodyBytes is kube-apiserver's request body limit.
const maxBodyBytes = 3 << 20

// serveResource handles every /api/... and /apis/... resource request.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request) {
	req, ok := parseRequest(r)
	if !ok {
		s.discovery.serveGroupOrVersion(w, r, s.codecs)
		return
	}
	rs := s.resources[req.gv.WithResource(req.resource)]
	if rs == nil || (!rs.res.Namespaced && req.namespace != "") ||
		(req.subresource != "" && !rs.res.HasSubresource(req.subresource)) {
		s.codecs.writeError(w, r, notFoundPath(), schema.GroupResource{}, "")
		return
	}
	req.res = rs.res
	out, err := s.codecs.negotiate(r.Header.Get("Accept"))
	if err != nil {
		s.codecs.writeError(w, r, err, rs.gr, req.name)
		return
	}
	setRequestInfo(r, req)
	ctx := withWarnings(r.Context(), w)
	var result runtime.Object
	code := http.StatusOK
	switch req.subresource {
	case "", "status", "approval", "ephemeralcontainers":
		switch req.verb {
		case "get":
			result, err = s.get(ctx, r, rs, req)
		case "list":
			if req.subresource != "" {
				err = notFoundPath()
				break
			}
			result, err = s.list(ctx, r, rs, req, out)
		case "watch":
			if req.subresource == "" {
				s.watch(w, r, rs, req, out)
				return
			}
			err = notFoundPath()
		case "create":
			if req.subresource != "" || req.name != "" {
				err = apierrors.NewMethodNotSupported(rs.gr, "create")
				break
			}
			result, err = s.create(ctx, w, r, rs, req)
			code = http.StatusCreated
		case "update":
			var created bool
			result, created, err = s.update(ctx, w, r, rs, req)
			if created {
				code = http.StatusCreated
			}
		case "patch":
			var created bool
			result, created, err = s.patch(ctx, w, r, rs, req)
			if created {
				code = http.StatusCreated
			}
		case "delete":
			if req.subresource != "" {
				err = apierrors.NewMethodNotSupported(rs.gr, "delete")
				break
			}
			result, err = s.delete(ctx, r, rs, req)
		case "deletecollection":
			result, err = s.deleteCollection(ctx, r, rs, req)
		default:
			err = apierrors.NewMethodNotSupported(rs.gr, req.verb)
		}
	case "scale":
		result, err = s.serveScale(ctx, w, r, rs, req)
	case "binding":
		result, err = s.serveBinding(ctx, r, rs, req)
		code = http.StatusCreated
	case "eviction":
		result, err = s.serveEviction(ctx, r, rs, req)
		code = http.StatusCreated
	case "token":
		if rs.gr != serviceAccountsGVR.GroupResource() {
			err = notFoundPath()
			break
		}
		result, err = s.serveToken(ctx, w, r, req)
		code = http.StatusCreated
	case "finalize":
		result, _, err = s.update(ctx, w, r, rs, req)
	case "log", "exec", "attach", "portforward", "proxy":
		s.proxyToNode(w, r, rs, req)
		return
	default:
		err = apierrors.NewMethodNotSupported(schema.GroupResource{Group: rs.gr.Group, Resource: rs.gr.Resource + "/" + req.subresource}, req.verb)
	}
	if err != nil {
		s.codecs.writeError(w, r, err, rs.gr, req.name)
		return
	}
	if code == http.StatusCreated && r.URL.Query().Get("dryRun") == "" && req.verb == "create" && req.subresource == "" {
		code = http.StatusCreated
	}
	result, err = s.transform(ctx, rs, result, out, r)
	if err != nil {
		s.codecs.writeError(w, r, err, rs.gr, req.name)
		return
	}
	writeObject(w, out, code, result)
}

// get reads one object: from etcd, or from the watch cache when a resourceVersion is given.
func (s *Server) get(ctx context.Context, r *http.Request, rs *resourceStore, req request) (runtime.Object, error) {
	key := rs.key(req.namespace, req.name)
	rv := r.URL.Query().Get("resourceVersion")
	if rv == "" {
		return rs.get(ctx, key, 0)
	}
	rev, err := parseRV(rv)
	if err != nil {
		return nil, err
	}
	return rs.cacheGet(ctx, key, rev)
}

func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version %q", rv))
	}
	return n, nil
}

// body reads a request body, enforcing the size limit.
func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, badRequest("reading the request body: %v", err)
	}
	if len(data) > maxBodyBytes {
		return nil, tooLarge(maxBodyBytes)
	}
	return data, nil
}

// decodeObject decodes a request body into the resource's kind, honouring fieldValidation.
// Unknown fields are warnings (Warn, the default), errors (Strict) or ignored (Ignore).
func (s *Server) decodeObject(w http.ResponseWriter, r *http.Request, data []byte, gvk schema.GroupVersionKind) (runtime.Object, error) {
	if len(data) == 0 {
		return nil, badRequest("the request body is empty: an object of kind %s is expected", gvk.Kind)
	}
	validation := r.URL.Query().Get("fieldValidation")
	switch validation {
	case "", "Warn", "Strict", "Ignore":
	default:
		return nil, badRequest("fieldValidation must be one of Ignore, Warn or Strict, not %q", validation)
	}
	dec, _, err := s.codecs.decoderFor(r.Header.Get("Content-Type"), validation != "Ignore")
	if err != nil {
		return nil, err
	}
	obj, got, err := dec.Decode(data, &gvk, nil)
	if err != nil {
		if !runtime.IsStrictDecodingError(err) || obj == nil {
			return nil, badRequest("%v", err)
		}
		if validation == "Strict" {
			return nil, badRequest("%v", err)
		}
		if sde, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range sde.Errors() {
				addWarning(w, e.Error())
			}
		}
	}
	if got.GroupVersion() != gvk.GroupVersion() {
		return nil, badRequest("the API version in the data (%s) does not match the expected API version (%s)", got.GroupVersion(), gvk.GroupVersion())
	}
	if got.Kind != gvk.Kind {
		return nil, badRequest("the kind in the data (%s) does not match the expected kind (%s)", got.Kind, gvk.Kind)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, nil
}

func addWarning(w http.ResponseWriter, msg string) {
	w.Header().Add("Warning", "299 - "+strconv.Quote(msg))
}

// writeOptions are the options every write takes.
type writeOptions struct {
	dryRun  bool
	manager string
	applied bool // server-side apply already recorded the manager's fields
}

func writeOptionsFrom(r *http.Request) (writeOptions, error) {
	q := r.URL.Query()
	opts := writeOptions{manager: q.Get("fieldManager")}
	for _, d := range q["dryRun"] {
		if d != "All" {
			return opts, badRequest("dryRun: unsupported value %q: supported values: All", d)
		}
		opts.dryRun = true
	}
	if opts.manager == "" {
		ua := r.UserAgent()
		if i := strings.IndexByte(ua, '/'); i >= 0 {
			ua = ua[:i]
		}
		opts.manager = ua
		if opts.manager == "" {
			opts.manager = "unknown"
		}
	}
	if len(opts.manager) > 128 {
		return opts, badRequest("fieldManager: Too long: may not be more than 128 bytes")
	}
	return opts, nil
}

func (s *Server) create(ctx context.Context, w http.ResponseWriter, r *http.Request, rs *resourceStore, req request) (runtime.Object, error) {
	opts, err := writeOptionsFrom(r)
	if err != nil {
		return nil, err
	}
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	obj, err := s.decodeObject(w, r, data, rs.res.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	m, _ := meta.Accessor(obj)
	if rs.res.Namespaced {
		if m.GetNamespace() != "" && m.GetNamespace() != req.namespace {
			return nil, badRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		m.SetNamespace(req.namespace)
	}
	return s.createObject(ctx, rs, obj, opts)
}

// createObject stores a new object after defaulting, validation and admission.
func (s *Server) createObject(ctx context.Context, rs *resourceStore, obj runtime.Object, opts writeOptions) (runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	if !rs.res.Namespaced {
		m.SetNamespace("")
	}
	if m.GetResourceVersion() != "" {
		return nil, badRequest("resourceVersion should not be set on objects to be created")
	}
	generated := m.GetName() == "" && m.GetGenerateName() != ""
	if generated {
		m.SetName(generateName(m.GetGenerateName()))
	}
	m.SetUID(uuid.NewUUID())
	m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetGeneration(0)
	if rs.hasSpec {
		m.SetGeneration(1)
	}
	if rs.res.Strategy.PrepareForCreate != nil {
		rs.res.Strategy.PrepareForCreate(obj)
	}
	setRequester(ctx, obj)
	if rs.res.Strategy.Default != nil {
		rs.res.Strategy.Default(obj)
	}
	if err := s.admitDefaults(ctx, rs, obj); err != nil {
		return nil, err
	}
	if err := s.admitNodeRestriction(ctx, admissionCreate, rs, "", obj, nil); err != nil {
		return nil, err
	}
	if err := s.validate(rs, obj, nil); err != nil {
		return nil, err
	}
	if err := s.checkEscalation(ctx, obj, nil); err != nil {
		return nil, err
	}
	if err := s.checkNamespace(ctx, rs, m.GetNamespace(), m.GetName()); err != nil {
		return nil, err
	}
	if err := s.admitValidating(ctx, rs, "", obj, nil); err != nil {
		return nil, err
	}
	if !opts.applied {
		obj = rs.managed[""].UpdateNoErrors(rs.newObject(), obj, opts.manager)
		m, _ = meta.Accessor(obj)
	}

	release, err := s.admitCreate(ctx, rs, obj, opts.dryRun)
	if err != nil {
		return nil, err
	}
	if opts.dryRun {
		release()
		return obj, nil
	}
	for attempt := 0; ; attempt++ {
		err = rs.create(ctx, rs.key(m.GetNamespace(), m.GetName()), obj)
		if errors.Is(err, storage.ErrExists) && generated && attempt < 8 {
			m.SetName(generateName(m.GetGenerateName()))
			continue
		}
		break
	}
	if err != nil {
		release()
		return nil, toStatus(err, rs.gr, m.GetName())
	}
	return obj, nil
}

func generateName(base string) string {
	const maxName = 63
	if len(base) > maxName-5 {
		base = base[:maxName-5]
	}
	return base + utilrand.String(5)
}

// validate checks metadata (generically) and the rest (the strategy). old is nil on create.
func (s *Server) validate(rs *resourceStore, obj, old runtime.Object) error {
	m, _ := meta.Accessor(obj)
	var errs field.ErrorList
	if old == nil {
		errs = apivalidation.ValidateObjectMetaAccessor(m, rs.res.Namespaced, nameValidator(rs.res.Resource), field.NewPath("metadata"))
		if rs.res.Strategy.Validate != nil {
			errs = append(errs, rs.res.Strategy.Validate(obj)...)
		}
	} else {
		om, _ := meta.Accessor(old)
		errs = apivalidation.ValidateObjectMetaAccessorUpdate(m, om, field.NewPath("metadata"))
		errs = append(errs, apivalidation.ValidateObjectMetaAccessor(m, rs.res.Namespaced, nameValidator(rs.res.Resource), field.NewPath("metadata"))...)
		if om.GetDeletionTimestamp() != nil {
			for _, f := range m.GetFinalizers() {
				if !contains(om.GetFinalizers(), f) {
					errs = append(errs, field.Forbidden(field.NewPath("metadata", "finalizers"), fmt.Sprintf("no new finalizers can be added if the object is being deleted, found new finalizers %q", f)))
				}
			}
		}
		if rs.res.Strategy.ValidateUpdate != nil {
			errs = append(errs, rs.res.Strategy.ValidateUpdate(obj, old)...)
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(rs.res.GroupVersionKind().GroupKind(), m.GetName(), errs)
	}
	return nil
}

func nameValidator(resource string) apivalidation.ValidateNameFunc {
	base := apivalidation.NameIsDNSSubdomain
	switch resource {
	case "namespaces":
		base = apivalidation.ValidateNamespaceName
	case "services":
		base = apivalidation.NameIsDNS1035Label
	case "roles", "clusterroles", "rolebindings", "clusterrolebindings":
		return rbacregistry.ValidateName // path segments such as "system:node"
	}
	return func(name string, prefix bool) []string {
		if msgs := path.IsValidPathSegmentName(name); len(msgs) > 0 {
			return msgs
		}
		return base(name, prefix)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (s *Server) update(ctx context.Context, w http.ResponseWriter, r *http.Request, rs *resourceStore, req request) (runtime.Object, bool, error) {
	opts, err := writeOptionsFrom(r)
	if err != nil {
		return nil, false, err
	}
	data, err := readBody(r)
	if err != nil {
		return nil, false, err
	}
	obj, err := s.decodeObject(w, r, data, rs.res.GroupVersionKind())
	if err != nil {
		return nil, false, err
	}
	m, _ := meta.Accessor(obj)
	if m.GetName() != req.name {
		return nil, false, badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), req.name)
	}
	if rs.res.Namespaced {
		if m.GetNamespace() != "" && m.GetNamespace() != req.namespace {
			return nil, false, badRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		m.SetNamespace(req.namespace)
	}
	out, err := s.updateObject(ctx, rs, req, opts, func(runtime.Object) (runtime.Object, error) {
		return obj.DeepCopyObject(), nil
	})
	return out, false, err
}

// updateObject is the read-modify-write loop behind update, patch and the subresources.
// tryUpdate gets a private copy of the current object and returns the desired one; a
// resourceVersion in the result is a precondition, an empty one means "whatever is current"
// and the loop retries on conflicts.
func (s *Server) updateObject(ctx context.Context, rs *resourceStore, req request, opts writeOptions, tryUpdate func(cur runtime.Object) (runtime.Object, error)) (runtime.Object, error) {
	key := rs.key(req.namespace, req.name)
	for attempt := 0; ; attempt++ {
		// The first attempt starts from the watch cache, saving an etcd read; the write's
		// compare-and-swap catches a stale copy, and every retry reads etcd.
		fromCache := attempt == 0
		cur, err := rs.currentForUpdate(ctx, key, fromCache)
		if err != nil {
			return nil, toStatus(err, rs.gr, req.name)
		}
		cm, _ := meta.Accessor(cur)
		curRV := cm.GetResourceVersion()
		obj, err := tryUpdate(cur.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		m, _ := meta.Accessor(obj)
		unconditional := m.GetResourceVersion() == ""
		if !unconditional && m.GetResourceVersion() != curRV {
			if fromCache {
				continue // the cache may be behind the client: decide on etcd's copy
			}
			return nil, apierrors.NewConflict(rs.gr, req.name, errors.New(conflictMessage))
		}
		m.SetResourceVersion(curRV)
		obj, err = s.prepareUpdate(ctx, rs, req.subresource, obj, cur, opts)
		if err != nil {
			return nil, err
		}
		m, _ = meta.Accessor(obj)
		if apiequality.Semantic.DeepEqual(obj, cur) {
			if fromCache {
				continue // "no change" must be judged against etcd's copy, not a stale one
			}
			// Nothing changed: no write, no new resourceVersion, unless the stored value
			// was encrypted with an older key, which an update rewrites (key rotation).
			curRev, _ := strconv.ParseInt(curRV, 10, 64)
			if stale, err := rs.store.Stale(ctx, key, curRev); err != nil || !stale {
				if err != nil {
					return nil, toStatus(err, rs.gr, req.name)
				}
				return cur, nil
			}
		}
		if opts.dryRun {
			return obj, nil
		}
		rev, _ := strconv.ParseInt(curRV, 10, 64)
		if m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0 && !pendingNamespaceFinalizers(obj) && !gracefulPending(obj) {
			deleted, err := rs.remove(ctx, key, rev)
			if errors.Is(err, storage.ErrConflict) && (unconditional || fromCache) && attempt < 16 {
				continue
			}
			if err != nil {
				return nil, toStatus(err, rs.gr, req.name)
			}
			s.released(ctx, rs, deleted)
			return deleted, nil
		}
		err = rs.update(ctx, key, obj, rev)
		if errors.Is(err, storage.ErrConflict) && (unconditional || fromCache) && attempt < 16 {
			continue
		}
		if err != nil {
			return nil, toStatus(err, rs.gr, req.name)
		}
		return obj, nil
	}
}

// prepareUpdate keeps what clients may not change, splits spec and status between the
// resource and its status subresource, bumps generation, defaults, validates and admits.
func (s *Server) prepareUpdate(ctx context.Context, rs *resourceStore, sub string, obj, old runtime.Object, opts writeOptions) (runtime.Object, error) {
	switch {
	case sub == "status" || sub == "approval": // approval: the strategy narrows it to conditions
		status := obj
		obj = old.DeepCopyObject()
		copyField(obj, status, "Status")
		sm, _ := meta.Accessor(status)
		m, _ := meta.Accessor(obj)
		m.SetResourceVersion(sm.GetResourceVersion())
	case sub == "finalize": // namespaces/<name>/finalize writes spec.finalizers only
		f := obj
		obj = old.DeepCopyObject()
		copyField(obj, f, "Spec")
		fm, _ := meta.Accessor(f)
		m, _ := meta.Accessor(obj)
		m.SetResourceVersion(fm.GetResourceVersion())
	case sub == "binding":
		// A binding writes spec.nodeName and the PodScheduled condition, nothing else.
	case sub == "ephemeralcontainers": // pods/<name>/ephemeralcontainers writes only those
		e := obj.(*corev1.Pod)
		obj = old.DeepCopyObject()
		obj.(*corev1.Pod).Spec.EphemeralContainers = e.Spec.EphemeralContainers
		obj.(*corev1.Pod).ResourceVersion = e.ResourceVersion
	default:
		if rs.hasStat {
			copyField(obj, old, "Status")
		}
		switch o := obj.(type) {
		case *corev1.Namespace: // spec.finalizers change only through namespaces/<name>/finalize
			o.Spec = old.(*corev1.Namespace).Spec
		case *corev1.Pod: // ephemeral containers change only through their subresource
			o.Spec.EphemeralContainers = old.(*corev1.Pod).Spec.EphemeralContainers
		}
	}
	if rs.res.Strategy.PrepareForUpdate != nil {
		rs.res.Strategy.PrepareForUpdate(sub, obj, old)
	}
	m, _ := meta.Accessor(obj)
	om, _ := meta.Accessor(old)
	m.SetUID(om.GetUID())
	m.SetCreationTimestamp(om.GetCreationTimestamp())
	m.SetDeletionTimestamp(om.GetDeletionTimestamp())
	m.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	m.SetGeneration(om.GetGeneration())
	if rs.res.Strategy.Default != nil {
		rs.res.Strategy.Default(obj)
	}
	if rs.hasSpec && sub != "status" && sub != "approval" && sub != "binding" && !specEqual(obj, old) {
		m.SetGeneration(om.GetGeneration() + 1)
	}
	if sub != "binding" {
		if err := s.validate(rs, obj, old); err != nil {
			return nil, err
		}
	}
	if err := s.checkEscalation(ctx, obj, old); err != nil {
		return nil, err
	}
	if err := s.admitNodeRestriction(ctx, admissionUpdate, rs, sub, obj, old); err != nil {
		return nil, err
	}
	if err := s.admitValidating(ctx, rs, sub, obj, old); err != nil {
		return nil, err
	}
	if err := s.admitUpdate(ctx, rs, obj, old, opts.dryRun); err != nil {
		return nil, err
	}
	if opts.applied || sub == "binding" { // a binding is no field owner's edit, as in Kubernetes
		return obj, nil
	}
	fm := rs.managed[""]
	if f := rs.managed[sub]; f != nil {
		fm = f
	}
	return fm.UpdateNoErrors(old, obj, opts.manager), nil
}

// checkNamespace is NamespaceLifecycle admission: objects are only created in namespaces
// that exist and are not being deleted.
func (s *Server) checkNamespace(ctx context.Context, rs *resourceStore, ns, name string) error {
	if !rs.res.Namespaced {
		return nil
	}
	nsStore := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}]
	obj, err := nsStore.lookup(ctx, nsStore.key("", ns))
	if errors.Is(err, storage.ErrNotFound) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns)
	}
	if err != nil {
		return toStatus(err, nsStore.gr, ns)
	}
	if m, _ := meta.Accessor(obj); m.GetDeletionTimestamp() != nil {
		err := apierrors.NewForbidden(rs.gr, name, fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
		// Controllers recognise this case by the cause, as in Kubernetes.
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: corev1.NamespaceTerminatingCause, Message: fmt.Sprintf("namespace %s is being terminated", ns), Field: "metadata.namespace"})
		return err
	}
	return nil
}

// deleteOptions reads DeleteOptions from the body (any supported encoding) and the query.
func (s *Server) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		dec, _, err := s.codecs.decoderFor(r.Header.Get("Content-Type"), false)
		if err != nil {
			return nil, err
		}
		gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
		obj, _, err := dec.Decode(data, &gvk, opts)
		if err != nil {
			return nil, badRequest("invalid DeleteOptions: %v", err)
		}
		if o, ok := obj.(*metav1.DeleteOptions); ok {
			opts = o
		}
	}
	q := r.URL.Query()
	if v := q.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, badRequest("gracePeriodSeconds: invalid value %q", v)
		}
		opts.GracePeriodSeconds = &n
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q.Get("orphanDependents"); v != "" {
		b := isTrue(v)
		opts.OrphanDependents = &b
	}
	if len(q["dryRun"]) > 0 {
		opts.DryRun = q["dryRun"]
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "DeleteOptions"}, "", field.ErrorList{field.NotSupported(field.NewPath("propagationPolicy"), *opts.PropagationPolicy, []string{"Foreground", "Background", "Orphan"})})
		}
	}
	for _, d := range opts.DryRun {
		if d != metav1.DryRunAll {
			return nil, badRequest("dryRun: unsupported value %q: supported values: All", d)
		}
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	return opts, nil
}

func (s *Server) delete(ctx context.Context, r *http.Request, rs *resourceStore, req request) (runtime.Object, error) {
	opts, err := s.deleteOptions(r)
	if err != nil {
		return nil, err
	}
	if err := s.admitNodeDelete(ctx, rs, req.namespace, req.name); err != nil {
		return nil, err
	}
	obj, _, err := s.deleteObject(ctx, rs, req.namespace, req.name, opts)
	return obj, err
}

// deleteObject deletes at once, or marks the object for deletion when finalizers, a
// propagation policy or a pod's grace period must run first. deleted reports which.
func (s *Server) deleteObject(ctx context.Context, rs *resourceStore, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	key := rs.key(ns, name)
	if rs.res.Resource == "namespaces" && rs.res.GroupVersion.Group == "" {
		switch name {
		case metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic:
			return nil, false, apierrors.NewForbidden(rs.gr, name, errors.New("this namespace may not be deleted"))
		}
	}
	for attempt := 0; ; attempt++ {
		cur, err := rs.get(ctx, key, 0)
		if err != nil {
			return nil, false, toStatus(err, rs.gr, name)
		}
		m, _ := meta.Accessor(cur)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != m.GetUID() {
				return nil, false, apierrors.NewConflict(rs.gr, name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
				return nil, false, apierrors.NewConflict(rs.gr, name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion()))
			}
		}
		rev, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
		obj := cur.DeepCopyObject()
		marked, err := s.markForDeletion(rs, obj, opts)
		if err != nil {
			return nil, false, err
		}
		if len(opts.DryRun) > 0 {
			return obj, !marked, nil
		}
		if marked {
			if apiequality.Semantic.DeepEqual(obj, cur) {
				return cur, false, nil
			}
			err = rs.update(ctx, key, obj, rev)
			if errors.Is(err, storage.ErrConflict) && attempt < 16 {
				continue
			}
			if err != nil {
				return nil, false, toStatus(err, rs.gr, name)
			}
			return obj, false, nil
		}
		deleted, err := rs.remove(ctx, key, rev)
		if errors.Is(err, storage.ErrConflict) && attempt < 16 {
			continue
		}
		if err != nil {
			return nil, false, toStatus(err, rs.gr, name)
		}
		s.released(ctx, rs, deleted)
		return deleted, true, nil
	}
}

// markForDeletion sets deletionTimestamp and the garbage collector's finalizers when the
// object cannot go at once; it reports false when the object should be removed now.
func (s *Server) markForDeletion(rs *resourceStore, obj runtime.Object, opts *metav1.DeleteOptions) (bool, error) {
	m, _ := meta.Accessor(obj)
	policy := metav1.DeletePropagationBackground
	if opts.OrphanDependents != nil && *opts.OrphanDependents {
		policy = metav1.DeletePropagationOrphan
	}
	if opts.PropagationPolicy != nil {
		policy = *opts.PropagationPolicy
	}
	grace := gracePeriod(obj, opts)
	now := time.Now()
	if m.GetDeletionTimestamp() != nil {
		// Already being deleted: a pod's grace period may only shrink; with no finalizers
		// left and grace 0 (the kubelet's final call) it goes now.
		if grace != nil && *grace == 0 && len(m.GetFinalizers()) == 0 {
			return false, nil
		}
		if grace != nil && m.GetDeletionGracePeriodSeconds() != nil && *grace < *m.GetDeletionGracePeriodSeconds() {
			ts := metav1.NewTime(now.Add(time.Duration(*grace) * time.Second))
			m.SetDeletionTimestamp(&ts)
			m.SetDeletionGracePeriodSeconds(grace)
		}
		return true, nil
	}
	finalizers := m.GetFinalizers()
	switch policy {
	case metav1.DeletePropagationOrphan:
		finalizers = withFinalizer(without(finalizers, metav1.FinalizerDeleteDependents), metav1.FinalizerOrphanDependents)
	case metav1.DeletePropagationForeground:
		finalizers = withFinalizer(without(finalizers, metav1.FinalizerOrphanDependents), metav1.FinalizerDeleteDependents)
	}
	graceful := grace != nil && *grace > 0
	if len(finalizers) == 0 && !graceful && !hasNamespaceFinalizers(obj) {
		return false, nil
	}
	m.SetFinalizers(finalizers)
	ts := metav1.NewTime(now)
	zero := int64(0)
	m.SetDeletionGracePeriodSeconds(&zero)
	if graceful {
		ts = metav1.NewTime(now.Add(time.Duration(*grace) * time.Second))
		m.SetDeletionGracePeriodSeconds(grace)
	}
	m.SetDeletionTimestamp(&ts)
	markNamespaceTerminating(obj)
	if rs.hasSpec {
		m.SetGeneration(m.GetGeneration() + 1)
	}
	return true, nil
}

func withFinalizer(list []string, f string) []string {
	if contains(list, f) {
		return list
	}
	return append(list, f)
}

func without(list []string, f string) []string {
	out := list[:0:0]
	for _, v := range list {
		if v != f {
			out = append(out, v)
		}
	}
	return out
}

func (s *Server) deleteCollection(ctx context.Context, r *http.Request, rs *resourceStore, req request) (runtime.Object, error) {
	q := r.URL.Query()
	sel, err := rs.parseSelection(q.Get("labelSelector"), q.Get("fieldSelector"))
	if err != nil {
		return nil, err
	}
	opts, err := s.deleteOptions(r)
	if err != nil {
		return nil, err
	}
	rev, err := s.cfg.Store.Revision(ctx)
	if err != nil {
		return nil, toStatus(err, rs.gr, "")
	}
	objs, _, err := rs.cacheList(ctx, rs.listPrefix(req.namespace), rev, rs.filter(sel))
	if err != nil {
		return nil, toStatus(err, rs.gr, "")
	}
	var deleted []runtime.Object
	for _, obj := range objs {
		m, _ := meta.Accessor(obj)
		out, _, err := s.deleteObject(ctx, rs, m.GetNamespace(), m.GetName(), opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		deleted = append(deleted, out)
	}
	list := rs.newList()
	if err := meta.SetList(list, deleted); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return list, nil
}

// requestInfo travels in the context for metrics.
type requestInfoKey struct{}

type requestInfoHolder struct{ req request }

func contextWithRequestInfo(ctx context.Context, h *requestInfoHolder) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, h)
}

func setRequestInfo(r *http.Request, req request) {
	if h, ok := r.Context().Value(requestInfoKey{}).(*requestInfoHolder); ok {
		h.req = req
	}
}

// uidOf returns an object's UID.
func uidOf(obj runtime.Object) types.UID {
	m, _ := meta.Accessor(obj)
	return m.GetUID()
}
