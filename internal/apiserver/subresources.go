package apiserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// scaleOf reads the replica counts of a scalable workload.
func scaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	var spec *int32
	var status int32
	var sel *metav1.LabelSelector
	var om metav1.ObjectMeta
	switch o := obj.(type) {
	case *appsv1.Deployment:
		spec, status, sel, om = o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector, o.ObjectMeta
	case *appsv1.ReplicaSet:
		spec, status, sel, om = o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector, o.ObjectMeta
	case *appsv1.StatefulSet:
		spec, status, sel, om = o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector, o.ObjectMeta
	default:
		return nil, fmt.Errorf("%T has no scale subresource", obj)
	}
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: om.Name, Namespace: om.Namespace, UID: om.UID,
			ResourceVersion: om.ResourceVersion, CreationTimestamp: om.CreationTimestamp},
		Status: autoscalingv1.ScaleStatus{Replicas: status},
	}
	if spec != nil {
		sc.Spec.Replicas = *spec
	}
	if sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err == nil {
			sc.Status.Selector = s.String()
		}
	}
	return sc, nil
}

func setReplicas(obj runtime.Object, n int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	case *appsv1.StatefulSet:
		o.Spec.Replicas = &n
	}
}

// serveScale serves <workload>/scale as an autoscaling/v1 Scale.
func (s *Server) serveScale(ctx context.Context, w http.ResponseWriter, r *http.Request, rs *resourceStore, req request) (runtime.Object, error) {
	key := rs.key(req.namespace, req.name)
	if req.verb == "get" {
		obj, err := rs.get(ctx, key, 0)
		if err != nil {
			return nil, toStatus(err, rs.gr, req.name)
		}
		return scaleOf(obj)
	}
	if req.verb != "update" && req.verb != "patch" {
		return nil, apierrors.NewMethodNotSupported(schema.GroupResource{Group: rs.gr.Group, Resource: rs.gr.Resource + "/scale"}, req.verb)
	}
	opts, err := writeOptionsFrom(r)
	if err != nil {
		return nil, err
	}
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	scaleGVK := autoscalingv1.SchemeGroupVersion.WithKind("Scale")
	ct := r.Header.Get("Content-Type")
	updated, err := s.updateObject(ctx, rs, req, opts, func(cur runtime.Object) (runtime.Object, error) {
		sc, err := scaleOf(cur)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		var want *autoscalingv1.Scale
		if req.verb == "update" {
			obj, err := s.decodeObject(w, r, data, scaleGVK)
			if err != nil {
				return nil, err
			}
			want = obj.(*autoscalingv1.Scale)
		} else {
			srs := &resourceStore{res: rs.res, gr: rs.gr, s: s}
			scaleRes := *rs.res
			scaleRes.GroupVersion, scaleRes.Kind = autoscalingv1.SchemeGroupVersion, "Scale"
			srs.res = &scaleRes
			pr := r.Clone(ctx)
			pr.Header.Set("Content-Type", ct)
			obj, err := s.applyPatch(w, pr, srs, types.PatchType(mediaTypeOf(ct)), data, sc)
			if err != nil {
				return nil, err
			}
			want = obj.(*autoscalingv1.Scale)
		}
		if want.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), req.name, field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")})
		}
		setReplicas(cur, want.Spec.Replicas)
		if want.ResourceVersion != "" && want.ResourceVersion != sc.ResourceVersion {
			return nil, apierrors.NewConflict(rs.gr, req.name, fmt.Errorf("%s", conflictMessage))
		}
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	return scaleOf(updated)
}

func mediaTypeOf(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}

// serveBinding assigns a pod to a node (POST pods/<name>/binding), as the scheduler does.
func (s *Server) serveBinding(ctx context.Context, r *http.Request, rs *resourceStore, req request) (runtime.Object, error) {
	if req.verb != "create" {
		return nil, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/binding"}, req.verb)
	}
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	dec, _, err := s.codecs.decoderFor(r.Header.Get("Content-Type"), false)
	if err != nil {
		return nil, err
	}
	gvk := corev1.SchemeGroupVersion.WithKind("Binding")
	obj, _, err := dec.Decode(data, &gvk, nil)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	b, ok := obj.(*corev1.Binding)
	if !ok {
		return nil, badRequest("a Binding is expected, not %T", obj)
	}
	if b.Name != "" && b.Name != req.name {
		return nil, badRequest("the name of the binding (%s) does not match the pod name on the URL (%s)", b.Name, req.name)
	}
	if b.Target.Name == "" {
		return nil, apierrors.NewInvalid(gvk.GroupKind(), req.name, field.ErrorList{field.Required(field.NewPath("target", "name"), "")})
	}
	opts, err := writeOptionsFrom(r)
	if err != nil {
		return nil, err
	}
	_, err = s.updateObject(ctx, rs, req, opts, func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod)
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(rs.gr, req.name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", b.UID, pod.UID))
		}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(rs.gr, req.name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", req.name))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(rs.gr, req.name, fmt.Errorf("pod %s is already assigned to node %q", req.name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setPodCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
		pod.ResourceVersion = ""
		return pod, nil
	})
	if err != nil {
		return nil, err
	}
	return successStatus(), nil
}

// podBindingUpdate lets a binding write both spec.nodeName and the PodScheduled condition.
func setPodCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			if st.Conditions[i].Status == c.Status {
				return
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

func successStatus() *metav1.Status {
	return &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated}
}

// serveEviction deletes a pod through the eviction subresource (policy/v1 Eviction).
func (s *Server) serveEviction(ctx context.Context, r *http.Request, rs *resourceStore, req request) (runtime.Object, error) {
	if req.verb != "create" {
		return nil, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/eviction"}, req.verb)
	}
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	dec, _, err := s.codecs.decoderFor(r.Header.Get("Content-Type"), false)
	if err != nil {
		return nil, err
	}
	gvk := policyv1.SchemeGroupVersion.WithKind("Eviction")
	obj, _, err := dec.Decode(data, &gvk, nil)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	ev, ok := obj.(*policyv1.Eviction)
	if !ok {
		return nil, badRequest("an Eviction is expected, not %T", obj)
	}
	opts := ev.DeleteOptions
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	if err := s.admitNodeEviction(ctx, rs, req.namespace, req.name); err != nil {
		return nil, err
	}
	if _, _, err := s.deleteObject(ctx, rs, req.namespace, req.name, opts); err != nil {
		return nil, err
	}
	return successStatus(), nil
}

// proxyToNode forwards pods/log, exec, attach, portforward and proxy to the kubelet of the
// pod's node (and nodes/proxy to the node's kubelet), upgrades (SPDY, WebSocket) included.
func (s *Server) proxyToNode(w http.ResponseWriter, r *http.Request, rs *resourceStore, req request) {
	ctx := r.Context()
	fail := func(err error) { s.codecs.writeError(w, r, err, rs.gr, req.name) }
	var nodeName, path string
	switch rs.res.Resource {
	case "pods":
		obj, err := rs.get(ctx, rs.key(req.namespace, req.name), 0)
		if err != nil {
			fail(toStatus(err, rs.gr, req.name))
			return
		}
		pod := obj.(*corev1.Pod)
		if pod.Spec.NodeName == "" {
			fail(badRequest("pod %s does not have a host assigned", req.name))
			return
		}
		nodeName = pod.Spec.NodeName
		container := r.URL.Query().Get("container")
		if container == "" && req.subresource != "portforward" && req.subresource != "proxy" {
			if len(pod.Spec.Containers) != 1 {
				fail(badRequest("a container name must be specified for pod %s, choose one of: %v", req.name, containerNames(pod)))
				return
			}
			container = pod.Spec.Containers[0].Name
		}
		switch req.subresource {
		case "log":
			if err := logsAvailable(pod, container, r.URL.Query().Get("previous") == "true"); err != nil {
				fail(err)
				return
			}
			path = fmt.Sprintf("/containerLogs/%s/%s/%s", req.namespace, req.name, container)
		case "exec", "attach":
			path = fmt.Sprintf("/%s/%s/%s/%s", req.subresource, req.namespace, req.name, container)
		case "portforward":
			path = fmt.Sprintf("/portForward/%s/%s", req.namespace, req.name)
		default:
			fail(apierrors.NewServiceUnavailable("pod proxy is not supported"))
			return
		}
	case "nodes":
		nodeName = req.name
		path = "/" + strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api/v1/nodes/"+req.name+"/proxy"), "/")
	default:
		fail(notFoundPath())
		return
	}
	nodes := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "nodes"}]
	obj, err := nodes.get(ctx, nodes.key("", nodeName), 0)
	if err != nil {
		fail(apierrors.NewServiceUnavailable(fmt.Sprintf("node %q of pod %s is not known: %v", nodeName, req.name, err)))
		return
	}
	node := obj.(*corev1.Node)
	host, port := nodeAddress(node), node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if host == "" || port == 0 {
		fail(apierrors.NewServiceUnavailable(fmt.Sprintf("node %q has no kubelet endpoint", nodeName)))
		return
	}
	target := &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(int(port)))}
	tlsConfig := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // kubelet serving certs are checked once nodes get CA-signed certificates
	if s.cfg.KubeletClientCert != nil {
		tlsConfig.Certificates = []tls.Certificate{*s.cfg.KubeletClientCert}
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = path
			pr.Out.URL.RawPath = ""
			pr.Out.Header.Del("Authorization")
		},
		Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: nil},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if st, ok := err.(apierrors.APIStatus); ok {
				fail(st.(error))
				return
			}
			fail(apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach the kubelet of node %q: %v", nodeName, err)))
		},
		FlushInterval: -1,
		// The kubelet answers errors in plain text; clients expect a Status.
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode < 400 || strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				return nil
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			st := apierrors.FromObject(&metav1.Status{Status: metav1.StatusFailure, Code: int32(resp.StatusCode),
				Reason: reasonForCode(resp.StatusCode), Message: strings.TrimSpace(string(body))})
			return st
		},
	}
	proxy.ServeHTTP(w, r)
}

func containerNames(pod *corev1.Pod) []string {
	var out []string
	for _, c := range pod.Spec.Containers {
		out = append(out, c.Name)
	}
	return out
}

func nodeAddress(node *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t {
				return a.Address
			}
		}
	}
	return ""
}

func reasonForCode(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	}
	return metav1.StatusReasonInternalError
}

// logsAvailable refuses, as kube-apiserver does, logs of a container that has not run yet.
func logsAvailable(pod *corev1.Pod, container string, previous bool) error {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range list {
			if cs.Name != container {
				continue
			}
			if previous {
				if cs.LastTerminationState.Terminated == nil {
					return badRequest("previous terminated container %q in pod %q not found", container, pod.Name)
				}
				return nil
			}
			if w := cs.State.Waiting; w != nil && cs.LastTerminationState.Terminated == nil {
				return badRequest("container %q in pod %q is waiting to start: %s", container, pod.Name, w.Reason)
			}
		}
	}
	return nil
}
