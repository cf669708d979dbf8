package apiserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/nanokube/nanokube/internal/storage"
)

// PodSecurity admission, as Kubernetes' built-in plugin with its default configuration
// (everything privileged unless the namespace's pod-security.kubernetes.io labels say
// otherwise, nothing exempt): pods that break the namespace's enforce level are refused;
// the warn level adds Warning headers; pod templates of workloads are only warned about;
// tightening a namespace's enforce level warns about the pods already there. The audit level
// has no audit log to write to yet and is parsed only.

// podSecurityEvaluator runs the checks of the pod-security-admission library.
var podSecurityEvaluator = func() policy.Evaluator {
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(fmt.Sprintf("pod security checks: %v", err)) // the library's own checks are valid
	}
	return e
}()

var privilegedLatest = psaapi.LevelVersion{Level: psaapi.LevelPrivileged, Version: psaapi.LatestVersion()}

// defaultPodSecurityPolicy is kube-apiserver's default: privileged at latest for every mode.
var defaultPodSecurityPolicy = psaapi.Policy{Enforce: privilegedLatest, Audit: privilegedLatest, Warn: privilegedLatest}

const (
	// namespacePodCheckLimit and namespacePodCheckTimeout bound the scan of existing pods
	// when a namespace's enforce level changes, as in Kubernetes.
	namespacePodCheckLimit   = 3000
	namespacePodCheckTimeout = time.Second
)

// podSecurityIgnoredSubresources change nothing PodSecurity looks at.
var podSecurityIgnoredSubresources = map[string]bool{"status": true, "binding": true, "eviction": true, "finalize": true, "approval": true}

func (s *Server) admitPodSecurity(ctx context.Context, rs *resourceStore, sub string, obj, old runtime.Object) error {
	if podSecurityIgnoredSubresources[sub] {
		return nil
	}
	switch o := obj.(type) {
	case *corev1.Namespace:
		if sub != "" {
			return nil
		}
		return s.admitNamespacePodSecurity(ctx, o, old)
	case *corev1.Pod:
		if old != nil && !significantPodUpdate(o, old.(*corev1.Pod)) {
			return nil
		}
		p, err := s.namespacePodSecurity(ctx, o.Namespace)
		if err != nil || p.FullyPrivileged() {
			return err
		}
		return podSecurityVerdict(ctx, p, &o.ObjectMeta, &o.Spec, true, rs.gr, o.Name)
	}
	if sub != "" {
		return nil
	}
	podMeta, podSpec := podTemplateOf(obj)
	if podSpec == nil {
		return nil
	}
	m, _ := meta.Accessor(obj)
	p, err := s.namespacePodSecurity(ctx, m.GetNamespace())
	if err != nil || p.Warn.Level == psaapi.LevelPrivileged {
		return err
	}
	return podSecurityVerdict(ctx, p, podMeta, podSpec, false, rs.gr, m.GetName())
}

// podSecurityVerdict evaluates one pod spec: a Forbidden error if enforce is set and the
// enforce level is broken, else a warning if the warn level is.
func podSecurityVerdict(ctx context.Context, p psaapi.Policy, podMeta *metav1.ObjectMeta, podSpec *corev1.PodSpec, enforce bool, gr schema.GroupResource, name string) error {
	var enforced *policy.AggregateCheckResult
	if enforce {
		r := policy.AggregateCheckResults(podSecurityEvaluator.EvaluatePod(p.Enforce, podMeta, podSpec))
		if !r.Allowed {
			return apierrors.NewForbidden(gr, name, fmt.Errorf("violates PodSecurity %q: %s", p.Enforce.String(), r.ForbiddenDetail()))
		}
		enforced = &r
	}
	r := enforced
	if r == nil || p.Warn != p.Enforce {
		w := policy.AggregateCheckResults(podSecurityEvaluator.EvaluatePod(p.Warn, podMeta, podSpec))
		r = &w
	}
	if !r.Allowed {
		warn(ctx, fmt.Sprintf("would violate PodSecurity %q: %s", p.Warn.String(), r.ForbiddenDetail()))
	}
	return nil
}

// namespacePodSecurity is the policy the namespace's labels set; labels that do not parse
// fall back to the strictest reading, as the library decides.
func (s *Server) namespacePodSecurity(ctx context.Context, namespace string) (psaapi.Policy, error) {
	nsStore := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}]
	obj, err := nsStore.lookup(ctx, nsStore.key("", namespace))
	if errors.Is(err, storage.ErrNotFound) {
		return defaultPodSecurityPolicy, nil // NamespaceLifecycle refuses the request
	}
	if err != nil {
		return psaapi.Policy{}, apierrors.NewInternalError(fmt.Errorf("failed to lookup namespace %q", namespace))
	}
	p, _ := psaapi.PolicyToEvaluate(obj.(*corev1.Namespace).Labels, defaultPodSecurityPolicy)
	return p, nil
}

// admitNamespacePodSecurity refuses namespaces whose PodSecurity labels do not parse and,
// when an update tightens the enforce level, warns about the pods that would now be refused.
func (s *Server) admitNamespacePodSecurity(ctx context.Context, ns *corev1.Namespace, old runtime.Object) error {
	p, errs := psaapi.PolicyToEvaluate(ns.Labels, defaultPodSecurityPolicy)
	if old == nil {
		if len(errs) > 0 {
			return apierrors.NewInvalid(schema.GroupKind{Kind: "Namespace"}, ns.Name, errs)
		}
		return nil
	}
	prev, prevErrs := psaapi.PolicyToEvaluate(old.(*corev1.Namespace).Labels, defaultPodSecurityPolicy)
	if len(errs) > 0 && (len(prevErrs) == 0 || fmt.Sprint(errs) != fmt.Sprint(prevErrs)) {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Namespace"}, ns.Name, errs)
	}
	if p.Enforce == prev.Enforce || p.Enforce.Level == psaapi.LevelPrivileged ||
		(p.Enforce.Version == prev.Enforce.Version && psaapi.CompareLevels(p.Enforce.Level, prev.Enforce.Level) < 1) {
		return nil
	}
	for _, w := range s.podSecurityNamespaceWarnings(ctx, ns.Name, p.Enforce) {
		warn(ctx, w)
	}
	return nil
}

// podSecurityNamespaceWarnings is the library admission's EvaluatePodsInNamespace: one
// warning per distinct violation, naming the first pod (and how many others) with it. One
// pod per controller is checked first, so that a large ReplicaSet does not hide the rest.
func (s *Server) podSecurityNamespaceWarnings(ctx context.Context, namespace string, enforce psaapi.LevelVersion) []string {
	pods := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "pods"}]
	items, _, err := pods.cacheList(ctx, pods.listPrefix(namespace), 0, nil)
	if err != nil {
		return []string{"failed to list pods while checking new PodSecurity enforce level"}
	}
	var first, rest []*corev1.Pod
	seen := map[types.UID]bool{}
	for _, it := range items {
		pod := it.(*corev1.Pod)
		if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
			if seen[ref.UID] {
				rest = append(rest, pod)
				continue
			}
			seen[ref.UID] = true
		}
		first = append(first, pod)
	}
	ordered := append(first, rest...)
	total := len(ordered)
	if len(ordered) > namespacePodCheckLimit {
		ordered = ordered[:namespacePodCheckLimit]
	}
	type count struct {
		pod string
		n   int
	}
	counts := map[string]*count{}
	var reasons []string
	deadline := time.Now().Add(namespacePodCheckTimeout)
	checked := len(ordered)
	for i, pod := range ordered {
		r := policy.AggregateCheckResults(podSecurityEvaluator.EvaluatePod(enforce, &pod.ObjectMeta, &pod.Spec))
		if !r.Allowed {
			reason := r.ForbiddenReason()
			c := counts[reason]
			if c == nil {
				c = &count{pod: pod.Name}
				counts[reason] = c
				reasons = append(reasons, reason)
			} else if pod.Name < c.pod {
				c.pod = pod.Name
			}
			c.n++
		}
		if time.Now().After(deadline) {
			checked = i + 1
			break
		}
	}
	var out []string
	if checked < total {
		out = append(out, fmt.Sprintf("new PodSecurity enforce level only checked against the first %d of %d existing pods", checked, total))
	}
	if len(reasons) > 0 {
		out = append(out, fmt.Sprintf("existing pods in namespace %q violate the new PodSecurity enforce level %q", namespace, enforce.String()))
	}
	podWarnings := make([]string, 0, len(reasons))
	for _, reason := range reasons {
		c := counts[reason]
		switch c.n {
		case 1:
			podWarnings = append(podWarnings, fmt.Sprintf("%s: %s", c.pod, reason))
		case 2:
			podWarnings = append(podWarnings, fmt.Sprintf("%s (and 1 other pod): %s", c.pod, reason))
		default:
			podWarnings = append(podWarnings, fmt.Sprintf("%s (and %d other pods): %s", c.pod, c.n-1, reason))
		}
	}
	sort.Strings(podWarnings)
	return append(out, podWarnings...)
}

// significantPodUpdate is true when an update changes what PodSecurity checks can see
// change on a live pod: its containers (images) and ephemeral containers.
func significantPodUpdate(pod, old *corev1.Pod) bool {
	if len(pod.Spec.Containers) != len(old.Spec.Containers) || len(pod.Spec.InitContainers) != len(old.Spec.InitContainers) {
		return true
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Image != old.Spec.Containers[i].Image {
			return true
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Image != old.Spec.InitContainers[i].Image {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		var prev *corev1.EphemeralContainer
		for i := range old.Spec.EphemeralContainers {
			if old.Spec.EphemeralContainers[i].Name == c.Name {
				prev = &old.Spec.EphemeralContainers[i]
				break
			}
		}
		if prev == nil || prev.Image != c.Image {
			return true
		}
	}
	return false
}

// podTemplateOf returns the pod template of the workload kinds PodSecurity warns about.
func podTemplateOf(obj runtime.Object) (*metav1.ObjectMeta, *corev1.PodSpec) {
	var t *corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *corev1.ReplicationController:
		t = o.Spec.Template
	case *corev1.PodTemplate:
		t = &o.Template
	case *appsv1.ReplicaSet:
		t = &o.Spec.Template
	case *appsv1.Deployment:
		t = &o.Spec.Template
	case *appsv1.StatefulSet:
		t = &o.Spec.Template
	case *appsv1.DaemonSet:
		t = &o.Spec.Template
	case *batchv1.Job:
		t = &o.Spec.Template
	case *batchv1.CronJob:
		t = &o.Spec.JobTemplate.Spec.Template
	}
	if t == nil {
		return nil, nil
	}
	return &t.ObjectMeta, &t.Spec
}
