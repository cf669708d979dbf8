package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corelisters "k8s.io/client-go/listers/core/v1"
	schedulinglisters "k8s.io/client-go/listers/scheduling/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/nanokube/nanokube/internal/scheduler/framework"
	"github.com/nanokube/nanokube/internal/scheduler/queue"
)

// Scheduler is a running scheduler.
type Scheduler struct {
	cfg      Config
	client   kubernetes.Interface
	log      *slog.Logger
	fw       *framework.Framework
	cache    *cache
	queue    *queue.Queue
	snapshot *framework.Snapshot
	recorder events.EventRecorder

	factory  informers.SharedInformerFactory
	pods     corelisters.PodLister
	priority schedulinglisters.PriorityClassLister
	volumes  volumeListers

	// handlers report when the event handlers have seen the informers' initial lists: an
	// informer can count as synced while its handlers still work through them.
	handlers []toolscache.ResourceEventHandlerRegistration

	bindSlots chan struct{}
	bindWG    sync.WaitGroup
	ready     chan struct{}
	readyOnce sync.Once
}

// New builds a scheduler; Run starts it.
func New(cfg Config, client kubernetes.Interface) (*Scheduler, error) {
	if client == nil {
		return nil, errors.New("scheduler: a client is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fw := framework.Default()
	fw.PercentageOfNodesToScore, fw.Parallelism = cfg.PercentageOfNodesToScore, cfg.Parallelism
	s := &Scheduler{
		cfg: cfg, client: client, log: cfg.Log, fw: fw,
		cache:     newCache(),
		queue:     queue.New(queue.Config{InitialBackoff: cfg.InitialBackoff, MaxBackoff: cfg.MaxBackoff}),
		snapshot:  &framework.Snapshot{},
		bindSlots: make(chan struct{}, cfg.BindWorkers),
		ready:     make(chan struct{}),
	}
	s.factory = informers.NewSharedInformerFactory(client, 0)
	s.pods = s.factory.Core().V1().Pods().Lister()
	s.priority = s.factory.Scheduling().V1().PriorityClasses().Lister()
	podReg, err := s.factory.Core().V1().Pods().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: s.onPodAdd, UpdateFunc: s.onPodUpdate, DeleteFunc: s.onPodDelete,
	})
	if err != nil {
		return nil, err
	}
	nodeReg, err := s.factory.Core().V1().Nodes().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: s.onNodeAdd, UpdateFunc: s.onNodeUpdate, DeleteFunc: s.onNodeDelete,
	})
	if err != nil {
		return nil, err
	}
	volumeRegs, err := s.watchVolumes()
	if err != nil {
		return nil, err
	}
	s.handlers = append([]toolscache.ResourceEventHandlerRegistration{podReg, nodeReg}, volumeRegs...)
	return s, nil
}

// ErrLeadershipLost is what Run returns when the scheduler lost its Lease; an assembly may
// campaign again with a new Scheduler.
var ErrLeadershipLost = errors.New("scheduler: lost leadership")

// Ready is closed once the scheduler's caches are synced and it schedules (with leader
// election: once it leads).
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

// Run schedules until ctx is done; it returns ctx's error, or an error if leadership is lost
// (the process should then exit, as kube-scheduler does).
func (s *Scheduler) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.factory.Start(ctx.Done())
	defer s.factory.Shutdown()
	for typ, ok := range s.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("scheduler: %v cache did not sync", typ)
		}
	}
	// The snapshot is built by the handlers: wait until they have the initial nodes and pods.
	synced := make([]toolscache.InformerSynced, len(s.handlers))
	for i, h := range s.handlers {
		synced[i] = h.HasSynced
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: s.client.EventsV1()})
	s.recorder = broadcaster.NewRecorder(scheme.Scheme, s.cfg.SchedulerName)
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		return err
	}
	defer broadcaster.Shutdown()

	if !s.cfg.LeaderElect {
		s.schedule(ctx)
		return ctx.Err()
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(s.cfg.LeaseNamespace, s.cfg.LeaseName),
		Client:     s.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: s.cfg.Identity},
	}
	lost := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, Name: s.cfg.LeaseName, ReleaseOnCancel: true,
		LeaseDuration: s.cfg.LeaseDuration, RenewDeadline: s.cfg.RenewDeadline, RetryPeriod: s.cfg.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				s.log.Info("scheduler: leading", "identity", s.cfg.Identity)
				s.schedule(ctx)
			},
			OnStoppedLeading: func() { close(lost) },
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	<-lost
	return ErrLeadershipLost
}

// schedule runs the scheduling loop until ctx is done, then waits for bindings in flight.
func (s *Scheduler) schedule(ctx context.Context) {
	go s.queue.Run(ctx)
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Info("scheduler: started", "nodes", s.cache.nodeCount(), "name", s.cfg.SchedulerName)
	for ctx.Err() == nil {
		qp, ok := s.queue.Pop()
		if !ok {
			break
		}
		s.scheduleOne(ctx, qp)
	}
	s.bindWG.Wait()
}

// responsible reports whether a pending pod is ours to schedule.
func (s *Scheduler) responsible(pod *v1.Pod) bool {
	name := pod.Spec.SchedulerName
	if name == "" {
		name = DefaultSchedulerName
	}
	return name == s.cfg.SchedulerName
}

func terminal(pod *v1.Pod) bool {
	return pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
}

// Built-in PriorityClasses, for API servers that do not create them.
var builtinPriorities = map[string]int32{"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}

// priorityOf resolves a pod's priority: spec.priority, else its PriorityClass, else the
// global default class, else 0.
func (s *Scheduler) priorityOf(pod *v1.Pod) int32 {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	if name := pod.Spec.PriorityClassName; name != "" {
		if pc, err := s.priority.Get(name); err == nil {
			return pc.Value
		}
		return builtinPriorities[name]
	}
	pcs, _ := s.priority.List(labels.Everything())
	var def *schedulingv1.PriorityClass
	for _, pc := range pcs {
		if pc.GlobalDefault && (def == nil || pc.CreationTimestamp.Before(&def.CreationTimestamp)) {
			def = pc
		}
	}
	if def != nil {
		return def.Value
	}
	return 0
}

func (s *Scheduler) podInfo(pod *v1.Pod) *framework.PodInfo {
	return framework.NewPodInfo(pod, s.priorityOf(pod))
}

func asPod(obj any) *v1.Pod {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, _ := obj.(*v1.Pod)
	return pod
}

func (s *Scheduler) onPodAdd(obj any) {
	pod := asPod(obj)
	switch {
	case pod == nil || terminal(pod):
	case pod.Spec.NodeName != "":
		s.cache.addPod(s.podInfo(pod))
		s.queue.MoveAllToActiveOrBackoff(podAddedHelps...)
	case s.responsible(pod) && pod.DeletionTimestamp == nil:
		s.queue.Add(pod, s.priorityOf(pod))
	}
}

func (s *Scheduler) onPodUpdate(oldObj, newObj any) {
	old, pod := asPod(oldObj), asPod(newObj)
	if pod == nil {
		return
	}
	switch {
	case pod.Spec.NodeName != "":
		if old != nil && old.Spec.NodeName == "" {
			s.queue.Delete(pod) // bound, by us or by someone else
		}
		if terminal(pod) {
			s.cache.removePod(pod.UID)
			s.queue.MoveAllToActiveOrBackoff(podRemovedHelps...)
			return
		}
		s.cache.addPod(s.podInfo(pod))
		s.queue.MoveAllToActiveOrBackoff(podAddedHelps...)
	case !s.responsible(pod) || pod.DeletionTimestamp != nil || terminal(pod):
		s.queue.Delete(pod)
	case s.cache.has(pod.UID):
		// Assumed and being bound: the binding's own update is on its way.
	default:
		s.queue.Update(old, pod, s.priorityOf(pod))
	}
}

func (s *Scheduler) onPodDelete(obj any) {
	pod := asPod(obj)
	if pod == nil {
		return
	}
	s.queue.Delete(pod)
	if pod.Spec.NodeName != "" || s.cache.has(pod.UID) {
		s.cache.removePod(pod.UID)
		s.queue.MoveAllToActiveOrBackoff(podRemovedHelps...)
	}
}

// Which rejections a cluster change may lift (kube-scheduler's queueing hints, coarsely): a
// pod placed on a node can satisfy pod affinity or even out a topology spread; a pod gone
// frees resources and ports and lifts anti-affinity. Node changes may lift anything.
var (
	podAddedHelps   = []string{"InterPodAffinity", "PodTopologySpread"}
	podRemovedHelps = []string{"NodeResourcesFit", "NodePorts", "InterPodAffinity", "PodTopologySpread"}
)

func (s *Scheduler) onNodeAdd(obj any) {
	if node, ok := obj.(*v1.Node); ok {
		s.cache.addNode(node)
		s.queue.MoveAllToActiveOrBackoff()
	}
}

func (s *Scheduler) onNodeUpdate(oldObj, newObj any) {
	old, _ := oldObj.(*v1.Node)
	node, ok := newObj.(*v1.Node)
	if !ok {
		return
	}
	s.cache.addNode(node)
	// Heartbeats change only timestamps; retry pods only on changes that matter to them.
	if old == nil || !equality.Semantic.DeepEqual(old.Spec, node.Spec) || !maps.Equal(old.Labels, node.Labels) ||
		!equality.Semantic.DeepEqual(old.Status.Allocatable, node.Status.Allocatable) {
		s.queue.MoveAllToActiveOrBackoff()
	}
}

func (s *Scheduler) onNodeDelete(obj any) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if node, ok := obj.(*v1.Node); ok {
		s.cache.removeNode(node.Name)
	}
}

// scheduleOne takes one decision and starts its binding.
func (s *Scheduler) scheduleOne(ctx context.Context, qp *queue.QueuedPod) {
	pod := qp.Pod
	if pod.DeletionTimestamp != nil || s.cache.has(pod.UID) {
		s.queue.Done(pod.UID)
		return
	}
	start := time.Now()
	s.cache.updateSnapshot(s.snapshot)
	pi := framework.NewPodInfo(pod, qp.Priority)
	state := framework.NewCycleState()
	volumes := s.podVolumes(pod)
	if volumes != nil {
		state.Write(framework.PodVolumesKey, volumes)
	}
	res, err := s.fw.Schedule(ctx, state, pi, s.snapshot)
	if err != nil {
		var fitErr *framework.FitError
		if !errors.As(err, &fitErr) {
			s.log.Error("scheduler: scheduling failed", "pod", klogRef(pod), "err", err)
			s.recordFailure(ctx, pod, "SchedulerError", err.Error(), "")
			s.queue.AddBackoff(qp)
			return
		}
		p := s.fw.Preempt(state, pi, s.snapshot, fitErr)
		if p.Node != "" {
			s.preempt(ctx, pod, p)
		} else {
			fitErr.PostFilterMsg = p.Message
		}
		qp.UnschedulablePlugins = map[string]bool{}
		for _, st := range fitErr.NodeStatuses {
			qp.UnschedulablePlugins[st.Plugin] = true
		}
		msg := fitErr.Error()
		s.log.Debug("scheduler: pod unschedulable", "pod", klogRef(pod), "msg", msg)
		s.recordFailure(ctx, pod, v1.PodReasonUnschedulable, msg, p.Node)
		s.queue.AddUnschedulable(qp)
		return
	}

	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = res.Node
	pi.Pod = assumed
	s.cache.assume(pi)
	s.queue.Done(pod.UID)
	s.log.Debug("scheduler: assumed", "pod", klogRef(pod), "node", res.Node, "evaluated", res.Evaluated,
		"feasible", res.Feasible, "took", time.Since(start))

	select {
	case s.bindSlots <- struct{}{}:
	case <-ctx.Done():
		s.cache.forget(pod.UID)
		return
	}
	s.bindWG.Add(1)
	go func() {
		defer func() { <-s.bindSlots; s.bindWG.Done() }()
		s.bind(ctx, qp, assumed, volumes)
	}()
}

func klogRef(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }
