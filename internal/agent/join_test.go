package agent_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nanokube/nanokube/internal/agent"
	"github.com/nanokube/nanokube/internal/apitest"
)

// An agent joins with the server's join token, runs as its node, comes back on its data dir
// without the token, and renews its client certificate as the node itself.
func TestJoinAndRenew(t *testing.T) {
	c := apitest.Start(t, apitest.Options{Controllers: true})
	token, err := os.ReadFile(filepath.Join(c.Dir, "node-token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := agent.JoinConfig{Server: c.Config.Host, Token: strings.TrimSpace(string(token)), DataDir: t.TempDir(),
		NodeName: "n1", NodeIPs: []string{"127.0.0.1"}}

	// Bad input first: nothing may be written.
	bad := cfg
	bad.Token = cfg.Token[:len(cfg.Token)-1] + "0"
	if bad.Token == cfg.Token {
		bad.Token = cfg.Token[:len(cfg.Token)-1] + "1"
	}
	if _, err := agent.Join(ctx, bad); err == nil || !strings.Contains(err.Error(), "refused the join token") {
		t.Fatalf("wrong token: %v", err)
	}
	if entries, _ := os.ReadDir(cfg.DataDir); len(entries) != 0 {
		t.Fatalf("a refused join wrote %v", entries)
	}

	creds, err := agent.Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := creds.KubeletCert.Leaf.Subject.CommonName; got != "system:node:n1" {
		t.Errorf("serving certificate CN %q", got)
	}
	client := kubernetes.NewForConfigOrDie(creds.RESTConfig)
	if _, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("the node cannot use its credentials: %v", err)
	}

	again := cfg
	again.Token = ""
	if _, err := agent.Join(ctx, again); err != nil {
		t.Fatalf("rejoin on the data dir without a token: %v", err)
	}
	other := again
	other.NodeName = "n2"
	if _, err := agent.Join(ctx, other); err == nil || !strings.Contains(err.Error(), `belongs to node "n1"`) {
		t.Errorf("another node name on this data dir: %v", err)
	}

	clientCert := filepath.Join(cfg.DataDir, "pki", "kubelet-client.crt")
	clientKey := filepath.Join(cfg.DataDir, "pki", "kubelet-client.key")
	before, _ := tls.LoadX509KeyPair(clientCert, clientKey)
	cfg.Timeout = time.Minute
	if err := agent.RenewClientCertificateNow(ctx, cfg, creds); err != nil {
		t.Fatal(err)
	}
	after, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	if after.Leaf.SerialNumber.Cmp(before.Leaf.SerialNumber) == 0 || after.Leaf.Subject.CommonName != "system:node:n1" {
		t.Errorf("renewal: serial %v → %v, CN %q", before.Leaf.SerialNumber, after.Leaf.SerialNumber, after.Leaf.Subject.CommonName)
	}
	reloaded, err := agent.Join(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.NewForConfigOrDie(reloaded.RESTConfig).CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the renewed certificate does not work: %v", err)
	}
}
