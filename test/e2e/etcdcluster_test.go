package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// etcdMember is one member of an etcd cluster run by a test from Debian's etcd-server.
type etcdMember struct {
	name, clientURL, peerURL string
	cmd                      *exec.Cmd
	done                     chan struct{}
	logPath                  string
}

// startEtcdCluster starts n etcd members on free loopback ports as one static cluster and
// waits until every member reports a leader. The members are killed by PID when the test ends.
func startEtcdCluster(t *testing.T, n int) []*etcdMember {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd is not installed (Debian's etcd-server; hack/install-deps.sh installs it)")
	}
	members := make([]*etcdMember, n)
	var initial []string
	for i := range members {
		m := &etcdMember{
			name:      fmt.Sprintf("m%d", i),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		}
		members[i] = m
		initial = append(initial, m.name+"="+m.peerURL)
	}
	logDir := t.TempDir()
	for _, m := range members {
		m.logPath = filepath.Join(logDir, m.name+".log")
		logf, err := os.Create(m.logPath)
		if err != nil {
			t.Fatal(err)
		}
		m.cmd = exec.Command("etcd", "--name", m.name, "--data-dir", t.TempDir(),
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "nanokube-e2e", "--logger", "zap", "--log-outputs", "stderr")
		m.cmd.Stdout, m.cmd.Stderr = logf, logf
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		m.done = make(chan struct{})
		go func(m *etcdMember) { _ = m.cmd.Wait(); logf.Close(); close(m.done) }(m)
		t.Cleanup(func() {
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(15 * time.Second):
				_ = m.cmd.Process.Kill()
				<-m.done
			}
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range members {
				log, _ := os.ReadFile(m.logPath)
				t.Logf("etcd member %s log (tail):\n%s", m.name, tail(string(log), 3000))
			}
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for _, m := range members {
		for {
			st, err := m.status()
			if err == nil && st.Leader != "" && st.Leader != "0" {
				break
			}
			select {
			case <-m.done:
				log, _ := os.ReadFile(m.logPath)
				t.Fatalf("etcd member %s exited early:\n%s", m.name, log)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcd member %s has no leader after 60s (last error: %v)", m.name, err)
			}
			time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
		}
	}
	return members
}

// etcdStatus is the part of etcd's /v3/maintenance/status answer (grpc-gateway JSON, where
// 64-bit integers are strings) that tells a member and its leader apart.
type etcdStatus struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Leader string `json:"leader"`
}

func (m *etcdMember) status() (etcdStatus, error) {
	var st etcdStatus
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Post(m.clientURL+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: %s", m.clientURL, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// kill ends the member at once, as a crash or a lost machine would.
func (m *etcdMember) kill(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill etcd member %s: %v", m.name, err)
	}
	<-m.done
}

// TestEtcdCluster runs the API server on a three-member external etcd cluster and kills the
// leader under load: no request seen by the client fails, and every object written before and
// during the loss can be read afterwards.
func TestEtcdCluster(t *testing.T) {
	members := startEtcdCluster(t, 3)
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.clientURL)
	}
	dir := t.TempDir()
	_, kc := startProcess(t, dir, "apiserver", "--data-dir", dir, "--secure-port", "0", "--bind-address", "127.0.0.1",
		"--etcd-servers", strings.Join(endpoints, ","))
	cacheDir := t.TempDir()
	kubectlKC := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kc, "--cache-dir", cacheDir}, args...)...)
		cmd.Env = append(os.Environ(), "KUBECTL_KUBERC=false")
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
		}
		return out.String()
	}

	const ns = "etcd-cluster"
	kubectlKC("", "create", "namespace", ns)
	var manifest strings.Builder
	var before []string
	for i := range 20 {
		name := fmt.Sprintf("before-%d", i)
		before = append(before, name)
		fmt.Fprintf(&manifest, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n  i: %q\n", name, ns, fmt.Sprint(i))
	}
	kubectlKC(manifest.String(), "apply", "-f", "-")

	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	// No client-side rate limit: the point is to have requests in flight when the member dies.
	rc.QPS, rc.Burst = -1, 0
	rc.Timeout = 30 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}

	// Writers create a ConfigMap, read it back, update it and list the namespace, over and over.
	var (
		mu       sync.Mutex
		ok       int
		failures []string
		written  []string
	)
	// record counts one request; a created object (create is set) joins the ones read back
	// at the end.
	record := func(op, name string, create bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s %s %s: %v", time.Now().Format("15:04:05.000"), op, name, err))
			return
		}
		ok++
		if create {
			written = append(written, name)
		}
	}
	succeeded := func() int { mu.Lock(); defer mu.Unlock(); return ok }
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("during-%d-%d", w, i)
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"n": "0"}}
				created, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{})
				record("create", name, true, err)
				if err != nil {
					continue
				}
				got, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
				if err == nil && got.ResourceVersion != created.ResourceVersion {
					err = fmt.Errorf("get %s: resourceVersion %s, created as %s", name, got.ResourceVersion, created.ResourceVersion)
				}
				record("get", name, false, err)
				if err != nil {
					continue
				}
				got.Data["n"] = "1"
				_, err = cs.CoreV1().ConfigMaps(ns).Update(context.Background(), got, metav1.UpdateOptions{})
				record("update", name, false, err)
				if i%5 == 0 {
					_, err = cs.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
					record("list", ns, false, err)
				}
			}
		}()
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			stop()
			wg.Wait()
		}
	}
	t.Cleanup(stopLoad)

	waitFor := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
			time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
		}
	}
	waitFor("100 requests before the loss", time.Minute, func() bool { return succeeded() >= 100 })

	// Kill the leader: the hardest member to lose, since every write goes through it.
	victim := members[0]
	leaderID := ""
	for _, m := range members {
		if st, err := m.status(); err == nil && st.Header.MemberID == st.Leader {
			victim, leaderID = m, st.Leader
			break
		}
	}
	if leaderID == "" {
		t.Log("no member reported itself leader; killing m0")
	}
	atKill := succeeded()
	killedAt := time.Now()
	victim.kill(t)
	t.Logf("killed etcd member %s (leader %v) after %d successful requests", victim.name, leaderID != "", atKill)

	// The survivors elect a new leader, and the API keeps serving for a few seconds more.
	var survivors []*etcdMember
	for _, m := range members {
		if m != victim {
			survivors = append(survivors, m)
		}
	}
	waitFor("a new leader among the survivors", 30*time.Second, func() bool {
		st, err := survivors[0].status()
		return err == nil && st.Leader != "" && st.Leader != "0" && st.Leader != leaderID
	})
	waitFor("5s of load after the loss and 200 more requests", time.Minute, func() bool {
		return time.Since(killedAt) > 5*time.Second && succeeded() >= atKill+200
	})
	stopLoad()

	mu.Lock()
	t.Logf("%d requests succeeded (%d after the loss), %d failed", ok, ok-atKill, len(failures))
	if len(failures) > 0 {
		t.Errorf("%d requests failed after etcd member %s was killed at %s; the first ones:\n%s", len(failures), victim.name,
			killedAt.Format("15:04:05.000"), strings.Join(failures[:min(len(failures), 10)], "\n"))
	}
	want := append(append([]string{}, before...), written...)
	mu.Unlock()

	// Every object written before and during the loss is there, read through kubectl.
	out := kubectlKC("", "get", "configmaps", "-n", ns, "-o", "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}")
	have := map[string]bool{}
	for _, name := range strings.Fields(out) {
		have[name] = true
	}
	var missing []string
	for _, name := range want {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d objects written are missing after the loss: %v", len(missing), len(want), missing[:min(len(missing), 20)])
	}
	// And the API still writes.
	kubectlKC("", "create", "configmap", "after", "-n", ns, "--from-literal=written=after-the-loss")
	if got := kubectlKC("", "get", "configmap", "after", "-n", ns, "-o", "jsonpath={.data.written}"); got != "after-the-loss" {
		t.Errorf("configmap after: read %q", got)
	}

	// An API server started while the member is still down comes up, even with the dead
	// member first in --etcd-servers, and sees the same objects.
	second := t.TempDir()
	_, kc2 := startProcess(t, second, "apiserver", "--data-dir", second, "--secure-port", "0", "--bind-address", "127.0.0.1",
		"--etcd-servers", strings.Join([]string{victim.clientURL, survivors[0].clientURL, survivors[1].clientURL}, ","))
	out2, err := exec.Command("kubectl", "--kubeconfig", kc2, "--cache-dir", t.TempDir(),
		"get", "configmap", "after", "-n", ns, "-o", "jsonpath={.data.written}").CombinedOutput()
	if err != nil || string(out2) != "after-the-loss" {
		t.Errorf("second API server: configmap after: %v %s", err, out2)
	}
}
