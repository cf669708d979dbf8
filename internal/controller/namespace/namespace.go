package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// finalizerKubernetes is the spec.finalizers entry this controller owns.
const finalizerKubernetes = corev1.FinalizerKubernetes

// Controller is the namespace controller.
type Controller struct {
	client kubernetes.Interface
	meta   metadata.Interface
	disco  discovery.DiscoveryInterface
	lister corelisters.NamespaceLister
	synced cache.InformerSynced
	log    *slog.Logger
	queue  workqueue.TypedRateLimitingInterface[string]
	now    func() time.Time
}

// New builds the controller and registers its informer handlers.
func New(client kubernetes.Interface, meta metadata.Interface, namespaces coreinformers.NamespaceInformer, log *slog.Logger) *Controller {
	c := &Controller{
		client: client,
		meta:   meta,
		disco:  client.Discovery(),
		lister: namespaces.Lister(),
		synced: namespaces.Informer().HasSynced,
		log:    log,
		// Content takes a while to go (graceful pod termination): retry from 200ms up to 10s.
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"}),
		now: time.Now,
	}
	enqueue := func(obj any) {
		ns, ok := obj.(*corev1.Namespace)
		if !ok || ns.DeletionTimestamp == nil {
			return
		}
		c.queue.Add(ns.Name)
	}
	_, _ = namespaces.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur any) { enqueue(cur) },
	})
	return c
}

// Run starts workers and blocks until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { wait.UntilWithContext(ctx, c.worker, time.Second) })
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

func (c *Controller) worker(ctx context.Context) {
	for {
		name, quit := c.queue.Get()
		if quit {
			return
		}
		err := c.sync(ctx, name)
		var remaining *contentRemainingError
		switch {
		case err == nil:
			c.queue.Forget(name)
		case errors.As(err, &remaining):
			c.log.Debug("namespace content remains", "namespace", name, "remaining", remaining.Error())
			c.queue.AddRateLimited(name)
		default:
			c.log.Info("namespace deletion failed, retrying", "namespace", name, "err", err)
			c.queue.AddRateLimited(name)
		}
		c.queue.Done(name)
	}
}

type contentRemainingError struct{ counts map[string]int }

func (e *contentRemainingError) Error() string {
	var parts []string
	for r, n := range e.counts {
		parts = append(parts, fmt.Sprintf("%s has %d resource instances", r, n))
	}
	sort.Strings(parts)
	return "some content remains: " + strings.Join(parts, ", ")
}

// sync deletes a terminating namespace's content and then finalizes it.
func (c *Controller) sync(ctx context.Context, name string) error {
	// A live read: the cache may still hold a namespace already finalized and recreated.
	ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil || !hasFinalizer(ns) {
		return nil
	}
	resources, discoveryErr := c.namespacedResources()
	if resources == nil {
		c.setCondition(ctx, ns, "NamespaceDeletionDiscoveryFailure", "DiscoveryFailed", discoveryErr.Error())
		return discoveryErr
	}

	var failures []error
	remaining := map[string]int{}
	finalizersLeft := map[string]int{}
	for _, r := range resources {
		n, fins, err := c.deleteCollection(ctx, name, r)
		if err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", r.gvr.GroupResource(), err))
			continue
		}
		if n > 0 {
			remaining[r.gvr.GroupResource().String()] = n
		}
		for _, f := range fins {
			finalizersLeft[f]++
		}
	}
	if discoveryErr != nil {
		failures = append(failures, discoveryErr)
	}
	c.updateConditions(ctx, ns, failures, remaining, finalizersLeft)
	if len(failures) > 0 {
		return errors.Join(failures...)
	}
	if len(remaining) > 0 {
		return &contentRemainingError{counts: remaining}
	}
	return c.finalize(ctx, ns)
}

type resource struct {
	gvr              schema.GroupVersionResource
	deleteCollection bool
	list             bool
}

// namespacedResources lists the namespaced resources that can be deleted. On a partial
// discovery failure it returns what it found and the error.
func (c *Controller) namespacedResources() ([]resource, error) {
	lists, err := c.disco.ServerPreferredNamespacedResources()
	if err != nil && (len(lists) == 0 || !discovery.IsGroupDiscoveryFailedError(err)) {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var out []resource
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "delete") {
				continue
			}
			out = append(out, resource{gvr: gv.WithResource(r.Name),
				deleteCollection: hasVerb(r.Verbs, "deletecollection"), list: hasVerb(r.Verbs, "list")})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].gvr.String() < out[j].gvr.String() })
	return out, err
}

// deleteCollection deletes everything of one resource in the namespace and returns how many
// objects are still there and the finalizers that hold them.
func (c *Controller) deleteCollection(ctx context.Context, namespace string, r resource) (int, []string, error) {
	client := c.meta.Resource(r.gvr).Namespace(namespace)
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	if r.deleteCollection {
		err := client.DeleteCollection(ctx, opts, metav1.ListOptions{})
		switch {
		case err == nil:
		case apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err):
			r.deleteCollection = false
		default:
			return 0, nil, err
		}
	}
	if !r.list {
		return 0, nil, nil
	}
	list, err := client.List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	var fins []string
	for _, item := range list.Items {
		fins = append(fins, item.Finalizers...)
		if r.deleteCollection || item.DeletionTimestamp != nil {
			continue
		}
		uid := item.UID
		err := client.Delete(ctx, item.Name, metav1.DeleteOptions{PropagationPolicy: &background, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return 0, nil, err
		}
	}
	return len(list.Items), fins, nil
}

// finalize removes "kubernetes" from spec.finalizers.
func (c *Controller) finalize(ctx context.Context, ns *corev1.Namespace) error {
	for attempt := 0; ; attempt++ {
		cp := ns.DeepCopy()
		cp.Spec.Finalizers = nil
		for _, f := range ns.Spec.Finalizers {
			if f != finalizerKubernetes {
				cp.Spec.Finalizers = append(cp.Spec.Finalizers, f)
			}
		}
		_, err := c.client.CoreV1().Namespaces().Finalize(ctx, cp, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			c.log.Info("namespace finalized", "namespace", ns.Name)
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 3 {
			return err
		}
		if ns, err = c.client.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		if !hasFinalizer(ns) {
			return nil
		}
	}
}

func (c *Controller) updateConditions(ctx context.Context, ns *corev1.Namespace, failures []error, remaining, finalizers map[string]int) {
	cp := ns.DeepCopy()
	set := func(t corev1.NamespaceConditionType, bad bool, reason, okReason, msg string) {
		status, r := corev1.ConditionFalse, okReason
		if bad {
			status, r = corev1.ConditionTrue, reason
		} else {
			msg = "All content successfully removed"
			if t == "NamespaceDeletionContentFailure" {
				msg = "All content successfully deleted, may be waiting on finalization"
			}
			if t == "NamespaceDeletionDiscoveryFailure" {
				msg = "All resources successfully discovered"
			}
			if t == "NamespaceFinalizersRemaining" {
				msg = "All content-preserving finalizers finished"
			}
		}
		setNamespaceCondition(cp, corev1.NamespaceCondition{Type: t, Status: status, Reason: r, Message: msg,
			LastTransitionTime: metav1.NewTime(c.now())})
	}
	var fail []string
	for _, e := range failures {
		fail = append(fail, e.Error())
	}
	set("NamespaceDeletionDiscoveryFailure", false, "DiscoveryFailed", "ResourcesDiscovered", "")
	set("NamespaceDeletionContentFailure", len(failures) > 0, "ContentDeletionFailed", "ContentDeleted",
		"Failed to delete all resource types, "+fmt.Sprint(len(failures))+" remaining: "+strings.Join(fail, ", "))
	set("NamespaceContentRemaining", len(remaining) > 0, "SomeResourcesRemain", "ContentRemoved",
		(&contentRemainingError{counts: remaining}).Error())
	var fins []string
	for f, n := range finalizers {
		fins = append(fins, fmt.Sprintf("%s in %d resource instances", f, n))
	}
	sort.Strings(fins)
	set("NamespaceFinalizersRemaining", len(finalizers) > 0, "SomeFinalizersRemain", "ContentHasNoFinalizers",
		"Some content in the namespace has finalizers remaining: "+strings.Join(fins, ", "))
	if equalConditions(ns.Status.Conditions, cp.Status.Conditions) {
		return
	}
	if _, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		c.log.Debug("namespace conditions not updated", "namespace", ns.Name, "err", err)
	}
}

func (c *Controller) setCondition(ctx context.Context, ns *corev1.Namespace, t corev1.NamespaceConditionType, reason, msg string) {
	cp := ns.DeepCopy()
	setNamespaceCondition(cp, corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
		LastTransitionTime: metav1.NewTime(c.now())})
	if equalConditions(ns.Status.Conditions, cp.Status.Conditions) {
		return
	}
	_, _ = c.client.CoreV1().Namespaces().UpdateStatus(ctx, cp, metav1.UpdateOptions{})
}

func setNamespaceCondition(ns *corev1.Namespace, c corev1.NamespaceCondition) {
	for i, cur := range ns.Status.Conditions {
		if cur.Type != c.Type {
			continue
		}
		if cur.Status == c.Status {
			c.LastTransitionTime = cur.LastTransitionTime
		}
		ns.Status.Conditions[i] = c
		return
	}
	ns.Status.Conditions = append(ns.Status.Conditions, c)
}

func equalConditions(a, b []corev1.NamespaceCondition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Status != b[i].Status || a[i].Reason != b[i].Reason || a[i].Message != b[i].Message {
			return false
		}
	}
	return true
}

func hasFinalizer(ns *corev1.Namespace) bool {
	for _, f := range ns.Spec.Finalizers {
		if f == finalizerKubernetes {
			return true
		}
	}
	return false
}

func hasVerb(verbs metav1.Verbs, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}
