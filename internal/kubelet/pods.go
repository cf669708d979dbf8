package kubelet

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI labels that tie sandboxes and containers to pods, as the real kubelet sets them.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"

	annotationRestartCount   = "io.kubernetes.container.restartCount"
	annotationImage          = "io.kubernetes.container.image"
	annotationTermination    = "io.kubernetes.container.terminationMessagePath"
	annotationTerminationLog = "io.kubernetes.container.terminationMessageHostPath"
	annotationGracePeriod    = "io.kubernetes.pod.terminationGracePeriod"
)

// resyncInterval is how often a worker syncs its pod when nothing else wakes it.
const resyncInterval = 10 * time.Second

// podWorker runs syncPod for one pod UID, one sync at a time.
type podWorker struct {
	kick chan struct{}
	done chan struct{}
}

// podChanged records the pod and wakes its worker, starting one if needed.
func (k *Kubelet) podChanged(ctx context.Context, pod *v1.Pod) {
	k.mu.Lock()
	k.pods[pod.UID] = pod
	k.mu.Unlock()
	k.ensureWorker(ctx, pod.UID)
}

// podDeleted forgets the pod; its worker tears down what is left of it and exits.
func (k *Kubelet) podDeleted(ctx context.Context, pod *v1.Pod) {
	k.mu.Lock()
	delete(k.pods, pod.UID)
	k.mu.Unlock()
	k.ensureWorker(ctx, pod.UID)
}

// ensureWorker wakes the worker of uid, starting one if there is none.
func (k *Kubelet) ensureWorker(ctx context.Context, uid types.UID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	w, ok := k.workers[uid]
	if !ok {
		w = &podWorker{kick: make(chan struct{}, 1), done: make(chan struct{})}
		k.workers[uid] = w
		go k.work(ctx, uid, w)
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// kick wakes the worker of uid if it has one.
func (k *Kubelet) kick(uid types.UID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if w, ok := k.workers[uid]; ok {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

func (k *Kubelet) work(ctx context.Context, uid types.UID, w *podWorker) {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-timer.C:
		}
		k.mu.Lock()
		pod := k.pods[uid]
		k.mu.Unlock()
		if pod == nil {
			if err := k.teardownPod(ctx, uid); err != nil {
				k.log.Warn("tearing down pod", "uid", uid, "err", err)
				timer.Reset(time.Second)
				continue
			}
			k.mu.Lock()
			// The pod may have come back (it never does with the same UID, but a stale
			// informer event might): only leave if it is still gone.
			if k.pods[uid] == nil {
				delete(k.workers, uid)
				k.mu.Unlock()
				return
			}
			k.mu.Unlock()
			continue
		}
		next := k.syncPod(ctx, pod)
		if ctx.Err() != nil {
			return
		}
		timer.Reset(next)
	}
}

// stopWorkers waits for every worker to notice the end of the context.
func (k *Kubelet) stopWorkers() {
	k.mu.Lock()
	ws := make([]*podWorker, 0, len(k.workers))
	for _, w := range k.workers {
		ws = append(ws, w)
	}
	k.mu.Unlock()
	for _, w := range ws {
		<-w.done
	}
}

// relist is the kubelet's pod lifecycle event generator: once a second it lists the
// runtime's containers and wakes the workers of pods whose containers changed state, so an
// exit is noticed within a second without every worker polling the runtime.
func (k *Kubelet) relist(ctx context.Context) {
	seen := map[string]runtimeapi.ContainerState{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cs, err := k.runtime.ListContainers(ctx, nil)
		if err != nil {
			k.log.Warn("relisting containers", "err", err)
			continue
		}
		now := make(map[string]runtimeapi.ContainerState, len(cs))
		changed := map[types.UID]bool{}
		for _, c := range cs {
			now[c.Id] = c.State
			if old, ok := seen[c.Id]; !ok || old != c.State {
				changed[types.UID(c.Labels[labelPodUID])] = true
			}
		}
		seen = now
		for uid := range changed {
			k.kick(uid)
		}
	}
}

// housekeeping removes what the runtime still holds for pods the kubelet no longer knows
// (after a restart, or a pod deleted while the kubelet was down), dead containers beyond
// the last one per container, and unused images when the image disk fills up.
func (k *Kubelet) housekeeping(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		k.collectOrphans(ctx)
		k.collectContainers(ctx)
		k.collectImages(ctx)
		k.sweepLocalPaths(ctx)
		k.objects.prune(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepLocalPaths removes the data of deleted local-path volumes of this node (see
// volume.Manager.SweepLocalPaths): the provisioner deletes the PersistentVolume of a deleted
// claim but cannot reach this node's disk.
func (k *Kubelet) sweepLocalPaths(ctx context.Context) {
	_, err := k.volumes.SweepLocalPaths(ctx, k.cfg.LocalPathDir, func(ctx context.Context) (map[string]bool, error) {
		list, err := k.client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		names := make(map[string]bool, len(list.Items))
		for _, pv := range list.Items {
			names[pv.Name] = true
		}
		return names, nil
	})
	if err != nil && ctx.Err() == nil {
		k.log.WarnContext(ctx, "sweeping local-path volumes failed", "dir", k.cfg.LocalPathDir, "err", err)
	}
}

// collectOrphans starts a worker for every pod UID the runtime or the volume directory has
// but the API no longer binds here; the worker tears it down.
func (k *Kubelet) collectOrphans(ctx context.Context) {
	uids := map[types.UID]bool{}
	if sbs, err := k.runtime.ListPodSandbox(ctx, nil); err == nil {
		for _, sb := range sbs {
			uids[types.UID(sb.Labels[labelPodUID])] = true
		}
	}
	if dirs, err := k.volumes.PodDirs(); err == nil {
		for _, uid := range dirs {
			uids[uid] = true
		}
	}
	var orphans []types.UID
	k.mu.Lock()
	for uid := range uids {
		if _, known := k.pods[uid]; !known && uid != "" {
			orphans = append(orphans, uid)
		}
	}
	k.mu.Unlock()
	for _, uid := range orphans {
		k.ensureWorker(ctx, uid)
	}
}
