package job_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/controller/job"
)

// poll calls cond until it returns "" or the deadline passes; the last answer says what was
// wrong.
func poll(t *testing.T, timeout time.Duration, cond func() (string, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg, err := cond()
		if err != nil {
			t.Fatal(err)
		}
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kubelet plays the node: every new pod of a Job named in outcome runs and ends in that
// phase, reported through the pods/status subresource as a kubelet reports it.
func kubelet(ctx context.Context, t *testing.T, client kubernetes.Interface, factory informers.SharedInformerFactory, outcome map[string]corev1.PodPhase) {
	_, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		pod := obj.(*corev1.Pod)
		ph, ok := outcome[pod.Labels[batchv1.JobNameLabel]]
		if !ok || pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending {
			return
		}
		go func() {
			code := int32(0)
			if ph == corev1.PodFailed {
				code = 1
			}
			now := metav1.Now()
			// The controller edits the pod too (finalizers): re-read and retry on conflict,
			// as a kubelet's status manager does.
			err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
				p, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				p.Status.Phase = ph
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, Image: p.Spec.Containers[0].Image,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, StartedAt: now, FinishedAt: now}}}}
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now}}
				_, err = client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
				return err
			})
			if err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
				t.Errorf("kubelet: %v", err)
			}
		}()
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func newJob(name string, parallelism, completions, backoffLimit int32) *batchv1.Job {
	return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.JobSpec{Parallelism: &parallelism, Completions: &completions, BackoffLimit: &backoffLimit,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "work", Image: "busybox"}}}}}}
}

func condition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == t && j.Status.Conditions[i].Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func TestJobsOnARealAPIServer(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := c.Client

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	factory := informers.NewSharedInformerFactory(client, 0)
	cfg := job.Config{Client: client, Informers: factory,
		Recorder:          broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "job-controller"}),
		PodFailureBackoff: 50 * time.Millisecond, MaxPodFailureBackoff: 200 * time.Millisecond}
	jobs, err := job.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := job.NewTTLAfterFinished(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubelet(ctx, t, client, factory, map[string]corev1.PodPhase{"ten": corev1.PodSucceeded, "fail": corev1.PodFailed, "idx": corev1.PodSucceeded})
	// The Job's status must never show more than parallelism active pods.
	var mu sync.Mutex
	maxActive := int32(0)
	_, _ = factory.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, cur any) {
		if j := cur.(*batchv1.Job); j.Name == "ten" {
			mu.Lock()
			maxActive = max(maxActive, j.Status.Active)
			mu.Unlock()
		}
	}})
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { jobs.Run(ctx, 2) })
	wg.Go(func() { ttl.Run(ctx, 1) })

	ten := newJob("ten", 3, 10, 6)
	fail := newJob("fail", 1, 1, 2)
	idx := newJob("idx", 3, 3, 6)
	idx.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	idx.Spec.TTLSecondsAfterFinished = ptr.To[int32](0)
	for _, j := range []*batchv1.Job{ten, fail, idx} {
		if _, err := client.BatchV1().Jobs("default").Create(ctx, j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string) (*batchv1.Job, error) {
		return client.BatchV1().Jobs("default").Get(ctx, name, metav1.GetOptions{})
	}
	pods := func(name string) ([]corev1.Pod, error) {
		list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
		if err != nil {
			return nil, err
		}
		return list.Items, nil
	}

	// 10 completions, 3 at a time.
	if path, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.CommandContext(ctx, path, "--kubeconfig", c.Kubecfg, "wait", "--for=condition=complete", "job/ten", "--timeout=60s").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl wait: %v\n%s", err, out)
		}
	}
	poll(t, 60*time.Second, func() (string, error) {
		j, err := get("ten")
		if err != nil {
			return "", err
		}
		if condition(j, batchv1.JobComplete) == nil {
			return fmt.Sprintf("ten not complete: %+v", j.Status), nil
		}
		if s := j.Status; s.Succeeded != 10 || s.Active != 0 || s.Failed != 0 || s.CompletionTime == nil ||
			condition(j, batchv1.JobSuccessCriteriaMet) == nil || len(s.UncountedTerminatedPods.Succeeded) != 0 {
			return "", fmt.Errorf("complete job status %+v", s)
		}
		return "", nil
	})
	ps, err := pods("ten")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 10 {
		t.Errorf("%d pods for 10 completions", len(ps))
	}
	for _, p := range ps {
		if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) || p.Labels[batchv1.ControllerUidLabel] == "" ||
			!*metav1.GetControllerOf(&p).BlockOwnerDeletion {
			t.Errorf("pod %s: finalizers %v labels %v", p.Name, p.Finalizers, p.Labels)
		}
	}
	mu.Lock()
	if maxActive > 3 {
		t.Errorf("up to %d active pods with parallelism 3", maxActive)
	}
	mu.Unlock()

	// Pods that always fail: backoffLimit 2 allows three failures.
	poll(t, 60*time.Second, func() (string, error) {
		j, err := get("fail")
		if err != nil {
			return "", err
		}
		cond := condition(j, batchv1.JobFailed)
		if cond == nil {
			return fmt.Sprintf("fail has not failed: %+v", j.Status), nil
		}
		if cond.Reason != batchv1.JobReasonBackoffLimitExceeded || cond.Message != "Job has reached the specified backoff limit" ||
			j.Status.Failed != 3 || j.Status.Active != 0 || j.Status.Succeeded != 0 || condition(j, batchv1.JobFailureTarget) == nil {
			return "", fmt.Errorf("failed job: %+v", j.Status)
		}
		return "", nil
	})
	if ps, err := pods("fail"); err != nil || len(ps) != 3 {
		t.Errorf("%d pods for backoffLimit 2 (%v)", len(ps), err)
	}

	// Indexed, then deleted by its TTL of 0.
	poll(t, 60*time.Second, func() (string, error) {
		j, err := get("idx")
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if j.DeletionTimestamp == nil {
			return fmt.Sprintf("idx not deleted: %+v", j.Status), nil
		}
		if condition(j, batchv1.JobComplete) == nil || j.Status.CompletedIndexes != "0-2" || j.Status.Succeeded != 3 {
			return "", fmt.Errorf("indexed job %+v", j.Status)
		}
		return "", nil
	})
	ps, err = pods("idx")
	if err != nil {
		t.Fatal(err)
	}
	var indexes []string
	for _, p := range ps {
		indexes = append(indexes, p.Annotations[batchv1.JobCompletionIndexAnnotation])
		if p.Spec.Hostname != "idx-"+p.Annotations[batchv1.JobCompletionIndexAnnotation] {
			t.Errorf("pod %s hostname %q", p.Name, p.Spec.Hostname)
		}
	}
	slices.Sort(indexes)
	if !slices.Equal(indexes, []string{"0", "1", "2"}) {
		t.Errorf("indexes %v", indexes)
	}

	poll(t, 30*time.Second, func() (string, error) {
		evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", err
		}
		var seen []string
		for _, e := range evs.Items {
			seen = append(seen, e.InvolvedObject.Name+" "+e.Reason)
		}
		for _, want := range []string{"ten SuccessfulCreate", "ten Completed", "fail BackoffLimitExceeded"} {
			if !slices.Contains(seen, want) {
				return fmt.Sprintf("no event %q in %v", want, seen), nil
			}
		}
		return "", nil
	})
}
