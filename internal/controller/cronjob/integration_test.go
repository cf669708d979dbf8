package cronjob_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/controller/cronjob"
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

func complete(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// TestCronJobOnARealAPIServer runs a CronJob every minute on a clock 60 times as fast as the
// real one, with the Job controller, and the test playing the kubelet.
func TestCronJobOnARealAPIServer(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := c.Client

	// API validation: the controller's parser decides what a schedule is.
	bad := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "default"}, Spec: batchv1.CronJobSpec{
		Schedule: "0 0 * * 7", TimeZone: ptr.To("Mars/Olympus"), JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}}}
	_, err := client.BatchV1().CronJobs("default").Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `spec.schedule: Invalid value: "0 0 * * 7": end of range (7) above maximum (6): 7`) ||
		!strings.Contains(err.Error(), `spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus`) {
		t.Fatalf("invalid cronjob: %v", err)
	}

	factory := informers.NewSharedInformerFactory(client, 0)
	jobs, err := job.New(job.Config{Client: client, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	cronjobs, err := cronjob.New(cronjob.Config{Client: client, Informers: factory, Clock: cronjob.NewScaledClock(60)})
	if err != nil {
		t.Fatal(err)
	}
	// The kubelet: every pod succeeds.
	_, _ = factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		pod := obj.(*corev1.Pod)
		go func() {
			now := metav1.Now()
			// The Job controller edits the pod too (finalizers): re-read and retry on
			// conflict, as a kubelet's status manager does.
			err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
				p, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				p.Status.Phase = corev1.PodSucceeded
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, Image: p.Spec.Containers[0].Image,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: now, FinishedAt: now}}}}
				_, err = client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
				return err
			})
			if err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
				t.Errorf("kubelet: %v", err)
			}
		}()
	}})
	var mu sync.Mutex
	created := map[string]bool{} // every Job the CronJob ever had
	_, _ = factory.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		j := obj.(*batchv1.Job)
		if ref := metav1.GetControllerOf(j); ref != nil && ref.Kind == "CronJob" && j.Annotations["cronjob.kubernetes.io/instantiate"] == "" {
			mu.Lock()
			created[j.Name] = true
			mu.Unlock()
		}
	}})
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { jobs.Run(ctx, 2) })
	wg.Go(func() { cronjobs.Run(ctx, 1) })

	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"}, Spec: batchv1.CronJobSpec{
		Schedule: "* * * * *", TimeZone: ptr.To("Europe/Paris"), SuccessfulJobsHistoryLimit: ptr.To[int32](2),
		JobTemplate: batchv1.JobTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "hello"}},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyOnFailure,
				Containers: []corev1.Container{{Name: "hello", Image: "busybox"}}}}}}}}
	cj, err = client.BatchV1().CronJobs("default").Create(ctx, cj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, func() (string, error) {
		list, err := client.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
		if err != nil {
			return "", err
		}
		var done []string
		for _, j := range list.Items {
			ref := metav1.GetControllerOf(&j)
			if ref == nil || ref.UID != cj.UID || !strings.HasPrefix(j.Name, "hello-") ||
				j.Annotations[batchv1.CronJobScheduledTimestampAnnotation] == "" {
				return "", fmt.Errorf("job %s: owner %+v annotations %v", j.Name, ref, j.Annotations)
			}
			if complete(&j) {
				done = append(done, j.Name)
			}
		}
		mu.Lock()
		n := len(created)
		mu.Unlock()
		live, err := client.BatchV1().CronJobs("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if n < 5 || len(done) > 2 || live.Status.LastScheduleTime == nil || live.Status.LastSuccessfulTime == nil {
			return fmt.Sprintf("%d jobs started, complete ones kept: %v, status %+v", n, done, live.Status), nil
		}
		return "", nil
	})

	// kubectl create job --from=cronjob/hello: only the API server and kubectl are involved.
	path, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	out, err := exec.CommandContext(ctx, path, "--kubeconfig", c.Kubecfg, "create", "job", "manual", "--from=cronjob/hello").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl create job: %v\n%s", err, out)
	}
	manual, err := client.BatchV1().Jobs("default").Get(ctx, "manual", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(manual); ref == nil || ref.UID != cj.UID || manual.Annotations["cronjob.kubernetes.io/instantiate"] != "manual" ||
		manual.Spec.Template.Spec.Containers[0].Image != "busybox" || manual.Spec.Selector == nil {
		t.Fatalf("manual job %+v", manual)
	}
}
