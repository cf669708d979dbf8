package apiserver

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/nanokube/nanokube/internal/quota"
)

// LimitRanger admission, as in Kubernetes: a new pod's containers get the default requests
// and limits of the namespace's LimitRanges (the mutating half, admitLimitRangeDefaults),
// then pods and claims are checked against their min, max and maxLimitRequestRatio (the
// validating half, admitLimitRanges). Violations are 403 Forbidden with Kubernetes' text.

var limitRangesGVR = schema.GroupVersionResource{Version: "v1", Resource: "limitranges"}

// limitRangerAnnotation records which defaults the plugin set.
const limitRangerAnnotation = "kubernetes.io/limit-ranger"

func (s *Server) limitRanges(ctx context.Context, namespace string) ([]*corev1.LimitRange, error) {
	lrs := s.resources[limitRangesGVR]
	if lrs == nil {
		return nil, nil
	}
	items, _, err := lrs.cacheList(ctx, lrs.listPrefix(namespace), 0, nil)
	if err != nil {
		return nil, toStatus(err, lrs.gr, "")
	}
	out := make([]*corev1.LimitRange, 0, len(items))
	for _, it := range items {
		out = append(out, it.(*corev1.LimitRange))
	}
	return out, nil
}

// admitLimitRangeDefaults fills in the requests and limits a new pod's containers leave out
// from the Container defaults of the namespace's LimitRanges.
func (s *Server) admitLimitRangeDefaults(ctx context.Context, pod *corev1.Pod) error {
	ranges, err := s.limitRanges(ctx, pod.Namespace)
	if err != nil || len(ranges) == 0 {
		return err
	}
	var set []string
	for _, lr := range ranges {
		for _, item := range lr.Spec.Limits {
			if item.Type != corev1.LimitTypeContainer {
				continue
			}
			for i := range pod.Spec.InitContainers {
				set = mergeContainerDefaults(&pod.Spec.InitContainers[i], item, "init container", set)
			}
			for i := range pod.Spec.Containers {
				set = mergeContainerDefaults(&pod.Spec.Containers[i], item, "container", set)
			}
		}
	}
	if len(set) > 0 {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[limitRangerAnnotation] = "LimitRanger plugin set: " + strings.Join(set, "; ")
	}
	return nil
}

func mergeContainerDefaults(c *corev1.Container, item corev1.LimitRangeItem, kind string, set []string) []string {
	fill := func(dst *corev1.ResourceList, defaults corev1.ResourceList) []string {
		var names []string
		for name, q := range defaults {
			if _, ok := (*dst)[name]; ok {
				continue
			}
			if *dst == nil {
				*dst = corev1.ResourceList{}
			}
			(*dst)[name] = q.DeepCopy()
			names = append(names, string(name))
		}
		sort.Strings(names)
		return names
	}
	limits := fill(&c.Resources.Limits, item.Default)
	requests := fill(&c.Resources.Requests, item.DefaultRequest)
	if len(requests) > 0 {
		set = append(set, fmt.Sprintf("%s request for %s %s", strings.Join(requests, ", "), kind, c.Name))
	}
	if len(limits) > 0 {
		set = append(set, fmt.Sprintf("%s limit for %s %s", strings.Join(limits, ", "), kind, c.Name))
	}
	return set
}

// admitLimitRanges checks new pods and new or resized claims against the namespace's
// LimitRanges.
func (s *Server) admitLimitRanges(ctx context.Context, rs *resourceStore, obj, old runtime.Object) error {
	var check func(corev1.LimitRangeItem) []error
	var name, namespace string
	switch o := obj.(type) {
	case *corev1.Pod:
		if old != nil {
			return nil // pod resources do not change after creation here
		}
		name, namespace = o.Name, o.Namespace
		check = func(item corev1.LimitRangeItem) []error { return podLimitErrors(o, item) }
	case *corev1.PersistentVolumeClaim:
		name, namespace = o.Name, o.Namespace
		check = func(item corev1.LimitRangeItem) []error { return claimLimitErrors(o, item) }
	default:
		return nil
	}
	ranges, err := s.limitRanges(ctx, namespace)
	if err != nil {
		return err
	}
	var errs []error
	for _, lr := range ranges {
		for _, item := range lr.Spec.Limits {
			errs = append(errs, check(item)...)
		}
	}
	if len(errs) > 0 {
		return apierrors.NewForbidden(rs.gr, name, utilerrors.NewAggregate(errs))
	}
	return nil
}

// podLimitErrors checks each container against a Container item and the whole pod against
// a Pod item.
func podLimitErrors(pod *corev1.Pod, item corev1.LimitRangeItem) []error {
	var errs []error
	kind := string(item.Type)
	checkAll := func(requests, limits corev1.ResourceList) {
		for _, name := range quota.Names(item.Min) {
			if err := minConstraint(kind, name, item.Min[name], requests, limits); err != nil {
				errs = append(errs, err)
			}
		}
		for _, name := range quota.Names(item.Max) {
			if err := maxConstraint(kind, name, item.Max[name], requests, limits); err != nil {
				errs = append(errs, err)
			}
		}
		for _, name := range quota.Names(item.MaxLimitRequestRatio) {
			if err := ratioConstraint(kind, name, item.MaxLimitRequestRatio[name], requests, limits); err != nil {
				errs = append(errs, err)
			}
		}
	}
	switch item.Type {
	case corev1.LimitTypeContainer:
		for _, c := range pod.Spec.Containers {
			checkAll(c.Resources.Requests, c.Resources.Limits)
		}
		for _, c := range pod.Spec.InitContainers {
			checkAll(c.Resources.Requests, c.Resources.Limits)
		}
	case corev1.LimitTypePod:
		checkAll(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}),
			resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{}))
	}
	return errs
}

// claimLimitErrors checks a claim's storage request against a PersistentVolumeClaim item.
func claimLimitErrors(pvc *corev1.PersistentVolumeClaim, item corev1.LimitRangeItem) []error {
	if item.Type != corev1.LimitTypePersistentVolumeClaim {
		return nil
	}
	var errs []error
	kind := string(item.Type)
	requests := pvc.Spec.Resources.Requests
	for _, name := range quota.Names(item.Min) {
		if err := minConstraint(kind, name, item.Min[name], requests, corev1.ResourceList{}); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range quota.Names(item.Max) {
		enforced := item.Max[name]
		req, ok := requests[name]
		if !ok {
			errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s.  No request is specified", name, kind, enforced.String()))
			continue
		}
		r, _, e := comparableValues(req, resource.Quantity{}, enforced)
		if r > e {
			errs = append(errs, fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String()))
		}
	}
	return errs
}

func minConstraint(kind string, name corev1.ResourceName, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	r, l, e := comparableValues(req, lim, enforced)
	switch {
	case !hasReq:
		return fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", name, kind, enforced.String())
	case r < e:
		return fmt.Errorf("minimum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	case hasLim && l < e:
		return fmt.Errorf("minimum %s usage per %s is %s, but limit is %s", name, kind, enforced.String(), lim.String())
	}
	return nil
}

func maxConstraint(kind string, name corev1.ResourceName, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	r, l, e := comparableValues(req, lim, enforced)
	switch {
	case !hasLim:
		return fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", name, kind, enforced.String())
	case l > e:
		return fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", name, kind, enforced.String(), lim.String())
	case hasReq && r > e:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, enforced.String(), req.String())
	}
	return nil
}

func ratioConstraint(kind string, name corev1.ResourceName, enforced resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	r, l, _ := comparableValues(req, lim, enforced)
	if !hasReq || r == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", name, kind, enforced.String())
	}
	if !hasLim || l == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified or limit is 0", name, kind, enforced.String())
	}
	ratio := float64(l) / float64(r)
	observed, allowed := ratio, float64(enforced.Value())
	if enforced.Value() <= resource.MaxMilliValue {
		observed, allowed = ratio*1000, float64(enforced.MilliValue())
	}
	if observed > allowed {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", name, kind, enforced.String(), ratio)
	}
	return nil
}

// comparableValues compares in milli-units when nothing overflows, else in units.
func comparableValues(req, lim, enforced resource.Quantity) (r, l, e int64) {
	r, l, e = req.Value(), lim.Value(), enforced.Value()
	if r <= resource.MaxMilliValue && l <= resource.MaxMilliValue && e <= resource.MaxMilliValue {
		r, l, e = req.MilliValue(), lim.MilliValue(), enforced.MilliValue()
	}
	return r, l, e
}
