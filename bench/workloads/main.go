// Command workloads measures the workload controllers at scale on simulated nodes: the time
// for a DaemonSet to have a ready pod on each of -nodes hollow nodes, and for a Job of
// -completions completions (parallelism -parallelism) to be Complete, its pods succeeding as
// soon as they run. Everything runs in this process: the control plane (embedded etcd without
// fsync, the API server, the controller manager and the scheduler, through internal/server)
// and the hollow nodes (internal/hollow).
//
//	go run ./bench/workloads [-nodes 1000] [-completions 1000] [-parallelism 100] [-write]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"runtime"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/bench/internal/perfdoc"
	"github.com/nanokube/nanokube/internal/hollow"
	"github.com/nanokube/nanokube/internal/server"
)

func main() {
	nodes := flag.Int("nodes", 1000, "hollow nodes")
	completions := flag.Int("completions", 1000, "the Job's completions")
	parallelism := flag.Int("parallelism", 100, "the Job's parallelism")
	write := flag.Bool("write", false, "record the figures in -doc")
	doc := flag.String("doc", "docs/performance.md", "file -write updates")
	flag.Parse()
	log.SetFlags(0)
	ds, job, err := run(*nodes, *completions, *parallelism)
	if err != nil {
		log.Fatal(err)
	}
	table := fmt.Sprintf("| measure | time |\n| --- | --- |\n"+
		"| a DaemonSet ready on all %d hollow nodes (create to numberReady = %d) | %s |\n"+
		"| a Job of %d completions, parallelism %d, pods succeeding as they run (create to Complete) | %s |\n",
		*nodes, *nodes, ds.Round(time.Millisecond), *completions, *parallelism, job.Round(time.Millisecond))
	fmt.Print("\n" + table)
	if *write {
		host, _ := os.Hostname()
		body := fmt.Sprintf("Measured %s on %s (%d CPUs) by `go run ./bench/workloads`: control plane, controllers, scheduler and hollow nodes in one process, etcd without fsync.\n\n%s",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), table)
		if err := perfdoc.WriteSection(*doc, "Workload controllers", body); err != nil {
			log.Fatal(err)
		}
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/workloads: "+format+"\n", args...)
}

func run(nodes, completions, parallelism int) (dsTime, jobTime time.Duration, err error) {
	dir, err := os.MkdirTemp("", "nanokube-bench-workloads-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	klog.SetSlogLogger(quiet) // client-go's leader election logs its shutdown through klog
	ready := make(chan server.Ready, 1)
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- server.Run(ctx, server.Config{DataDir: dir, BindAddress: "127.0.0.1", AdvertiseAddress: "127.0.0.1", SecurePort: 0,
			UnsafeNoFsync: true, DisableAgent: true, Log: quiet}, func(r server.Ready) { ready <- r })
	}()
	var kubeconfig string
	select {
	case r := <-ready:
		kubeconfig = r.Kubeconfig
	case err := <-srvDone:
		return 0, 0, fmt.Errorf("control plane: %w", err)
	}
	defer func() { cancel(); <-srvDone }()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return 0, 0, err
	}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.QPS, cfg.Burst = -1, 0
	client := kubernetes.NewForConfigOrDie(cfg)

	progress("registering %d hollow nodes", nodes)
	hn, err := hollow.New(hollow.Config{Client: kubernetes.NewForConfigOrDie(cfg), Count: nodes, LeaseInterval: 10 * time.Second,
		CompleteAfter: time.Millisecond, Workers: 32, Log: quiet})
	if err != nil {
		return 0, 0, err
	}
	hollowDone := make(chan error, 1)
	go func() { hollowDone <- hn.Run(ctx) }()
	select {
	case <-hn.Ready():
	case err := <-hollowDone:
		return 0, 0, fmt.Errorf("hollow nodes: %w", err)
	}

	labels := map[string]string{"app": "bench"}
	podSpec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "bench.local/agent:1"}}}
	progress("DaemonSet on %d nodes", nodes)
	start := time.Now()
	_, err = client.AppsV1().DaemonSets("default").Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec}},
	}, metav1.CreateOptions{})
	if err != nil {
		return 0, 0, err
	}
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
		return err == nil && d.Status.NumberReady == int32(nodes), nil
	}); err != nil {
		return 0, 0, fmt.Errorf("DaemonSet: %w", err)
	}
	dsTime = time.Since(start)
	progress("DaemonSet ready in %v; Job of %d completions", dsTime.Round(time.Millisecond), completions)

	jobSpec := podSpec
	jobSpec.RestartPolicy = corev1.RestartPolicyNever
	start = time.Now()
	_, err = client.BatchV1().Jobs("default").Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "work"},
		Spec: batchv1.JobSpec{Completions: ptr.To(int32(completions)), Parallelism: ptr.To(int32(parallelism)),
			Template: corev1.PodTemplateSpec{Spec: jobSpec}},
	}, metav1.CreateOptions{})
	if err != nil {
		return 0, 0, err
	}
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		j, err := client.BatchV1().Jobs("default").Get(ctx, "work", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return 0, 0, fmt.Errorf("Job: %w", err)
	}
	return dsTime, time.Since(start), nil
}
