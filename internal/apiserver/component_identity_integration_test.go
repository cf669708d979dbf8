package apiserver_test

import (
	"path/filepath"
	"slices"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nanokube/nanokube/internal/apitest"
)

// TestComponentIdentities checks the kubeconfigs the server writes for its scheduler,
// controller manager, service proxy and cluster DNS: each authenticates as its own user,
// and the default policy grants each what Kubernetes grants it, not more.
func TestComponentIdentities(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	client := func(file string) kubernetes.Interface {
		cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.Dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return kubernetes.NewForConfigOrDie(cfg)
	}
	for _, tc := range []struct {
		file, user string
		allowed    func(kubernetes.Interface) error
		forbidden  func(kubernetes.Interface) error
	}{
		{"scheduler.kubeconfig", "system:kube-scheduler",
			func(k kubernetes.Interface) error {
				_, err := k.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
				return err
			},
			func(k kubernetes.Interface) error {
				_, err := k.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
				return err
			}},
		{"controller-manager.kubeconfig", "system:kube-controller-manager",
			func(k kubernetes.Interface) error {
				_, err := k.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "made-by-controllers"}}, metav1.CreateOptions{})
				return err
			},
			func(k kubernetes.Interface) error {
				// Impersonation is no controller's business.
				cfg, _ := clientcmd.BuildConfigFromFlags("", filepath.Join(c.Dir, "controller-manager.kubeconfig"))
				cfg.Impersonate.UserName = "alice"
				_, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Pods("").List(ctx, metav1.ListOptions{})
				return err
			}},
		{"kube-dns.kubeconfig", "system:kube-dns",
			func(k kubernetes.Interface) error {
				if _, err := k.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err != nil {
					return err
				}
				_, err := k.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
				return err
			},
			func(k kubernetes.Interface) error {
				_, err := k.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
				return err
			}},
		{"kube-proxy.kubeconfig", "system:kube-proxy",
			func(k kubernetes.Interface) error {
				_, err := k.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
				return err
			},
			func(k kubernetes.Interface) error {
				_, err := k.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
				return err
			}},
	} {
		k := client(tc.file)
		r, err := k.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: whoami: %v", tc.file, err)
		}
		if u := r.Status.UserInfo; u.Username != tc.user || slices.Contains(u.Groups, "system:masters") {
			t.Errorf("%s: authenticated as %s %v, want %s", tc.file, u.Username, u.Groups, tc.user)
		}
		if err := tc.allowed(k); err != nil {
			t.Errorf("%s: %v", tc.user, err)
		}
		if err := tc.forbidden(k); err == nil {
			t.Errorf("%s: allowed what its role does not grant", tc.user)
		} else {
			wantForbidden(t, err, "")
		}
	}
}
