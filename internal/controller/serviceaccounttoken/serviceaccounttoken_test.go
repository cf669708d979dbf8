package serviceaccounttoken

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/nanokube/nanokube/internal/controller/controllertest"
)

const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

// fakeSigner makes tokens that say what they were signed for.
type fakeSigner struct{}

func (fakeSigner) SignLegacy(namespace, name, uid, secretName string) (string, error) {
	return fmt.Sprintf("token:%s/%s/%s/%s", namespace, name, uid, secretName), nil
}

func account(name, uid string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid)}}
}

func tokenSecret(name string, annotations map[string]string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: "secret-uid", Annotations: annotations},
		Type: corev1.SecretTypeServiceAccountToken}
	if data != nil {
		s.Data = map[string][]byte{}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
	}
	return s
}

func newTest(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(Config{Client: client, Informers: factory, Signer: fakeSigner{}, RootCA: []byte(ca)})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.StartInformers(t, client, factory)
	client.ClearActions()
	return c, client
}

// actions are the client calls after the informers started, but for list and watch.
func actions(client *fake.Clientset) []string {
	var out []string
	for _, a := range client.Actions() {
		if a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		name := ""
		switch a := a.(type) {
		case clienttesting.GetAction:
			name = a.GetName()
		case clienttesting.DeleteAction:
			name = a.GetName()
		case clienttesting.UpdateAction:
			name = a.GetObject().(metav1.Object).GetName()
		}
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource+" "+a.GetNamespace()+"/"+name)
	}
	return out
}

func TestSync(t *testing.T) {
	annotated := func(uid string) map[string]string {
		a := map[string]string{corev1.ServiceAccountNameKey: "robot"}
		if uid != "" {
			a[corev1.ServiceAccountUIDKey] = uid
		}
		return a
	}
	filled := map[string]string{"token": "old-token", "ca.crt": ca, "namespace": "ns"}
	tests := []struct {
		name        string
		objs        []runtime.Object
		wantActions []string
		// wantData is the Secret's data after an update.
		wantData map[string]string
	}{
		{
			name:        "a new secret is filled",
			objs:        []runtime.Object{account("robot", "u1"), tokenSecret("s", annotated(""), nil)},
			wantActions: []string{"update secrets ns/s"},
			wantData:    map[string]string{"token": "token:ns/robot/u1/s", "ca.crt": ca, "namespace": "ns"},
		},
		{
			name:        "a filled secret is left alone",
			objs:        []runtime.Object{account("robot", "u1"), tokenSecret("s", annotated("u1"), filled)},
			wantActions: nil,
		},
		{
			name: "a token already there is never re-signed",
			objs: []runtime.Object{account("robot", "u1"),
				tokenSecret("s", annotated(""), map[string]string{"token": "mine"})},
			wantActions: []string{"update secrets ns/s"},
			wantData:    map[string]string{"token": "mine", "ca.crt": ca, "namespace": "ns"},
		},
		{
			name:        "a secret of a missing account is deleted after asking the API server",
			objs:        []runtime.Object{tokenSecret("s", annotated(""), nil)},
			wantActions: []string{"get serviceaccounts ns/robot", "delete secrets ns/s"},
		},
		{
			name:        "a secret of a recreated account is deleted",
			objs:        []runtime.Object{account("robot", "u2"), tokenSecret("s", annotated("u1"), filled)},
			wantActions: []string{"get serviceaccounts ns/robot", "delete secrets ns/s"},
		},
		{
			name:        "a secret without the account annotation stays as is",
			objs:        []runtime.Object{account("robot", "u1"), tokenSecret("s", nil, nil)},
			wantActions: nil,
		},
		{
			name: "other secret types are ignored",
			objs: []runtime.Object{account("robot", "u1"), &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Annotations: annotated("")}, Type: corev1.SecretTypeOpaque}},
			wantActions: nil,
		},
		{
			name:        "a gone secret is nothing to do",
			objs:        []runtime.Object{account("robot", "u1")},
			wantActions: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, client := newTest(t, tt.objs...)
			if err := c.sync(context.Background(), "ns/s"); err != nil {
				t.Fatal(err)
			}
			got := actions(client)
			if fmt.Sprint(got) != fmt.Sprint(tt.wantActions) {
				t.Fatalf("actions = %v, want %v", got, tt.wantActions)
			}
			for _, a := range client.Actions() {
				switch a := a.(type) {
				case clienttesting.DeleteAction:
					if p := a.GetDeleteOptions().Preconditions; p == nil || p.UID == nil || *p.UID != "secret-uid" {
						t.Errorf("delete without the secret's UID as precondition: %+v", a.GetDeleteOptions())
					}
				case clienttesting.UpdateAction:
					s := a.GetObject().(*corev1.Secret)
					if s.Annotations[corev1.ServiceAccountUIDKey] != "u1" || s.Annotations[corev1.ServiceAccountNameKey] != "robot" {
						t.Errorf("annotations = %v", s.Annotations)
					}
					if len(s.Data) != len(tt.wantData) {
						t.Errorf("data = %v, want %v", s.Data, tt.wantData)
					}
					for k, v := range tt.wantData {
						if string(s.Data[k]) != v {
							t.Errorf("data[%s] = %q, want %q", k, s.Data[k], v)
						}
					}
				}
			}
		})
	}
}

// The cached secret is never modified: the update carries a copy.
func TestSyncDoesNotMutateCache(t *testing.T) {
	c, _ := newTest(t, account("robot", "u1"), tokenSecret("s", map[string]string{corev1.ServiceAccountNameKey: "robot"}, nil))
	cached, err := c.secrets.Secrets("ns").Get("s")
	if err != nil {
		t.Fatal(err)
	}
	before := cached.DeepCopy()
	if err := c.sync(context.Background(), "ns/s"); err != nil {
		t.Fatal(err)
	}
	// The informer replaces objects rather than changing them, so the object fetched before
	// the sync must still be as it was.
	if !equality.Semantic.DeepEqual(cached, before) {
		t.Errorf("the cached secret was changed in place: %+v", cached)
	}
}

// Running with informers: a Secret is filled when created, and deleted with its account.
func TestRunFillsAndDeletesWithAccount(t *testing.T) {
	c, client := newTest(t, account("robot", "u1"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx, 1)
	secrets := client.CoreV1().Secrets("ns")
	if _, err := secrets.Create(ctx, tokenSecret("s", map[string]string{corev1.ServiceAccountNameKey: "robot"}, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := secrets.Get(ctx, "s", metav1.GetOptions{})
		return err == nil && string(s.Data["token"]) == "token:ns/robot/u1/s", nil
	}); err != nil {
		t.Fatalf("the token was not filled: %v", err)
	}
	if err := client.CoreV1().ServiceAccounts("ns").Delete(ctx, "robot", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := secrets.Get(ctx, "s", metav1.GetOptions{})
		return err != nil, nil
	}); err != nil {
		t.Fatalf("the secret of a deleted account was kept: %v", err)
	}
}

func TestNeedsASigner(t *testing.T) {
	client := fake.NewClientset()
	if _, err := New(Config{Client: client, Informers: informers.NewSharedInformerFactory(client, 0)}); err == nil {
		t.Fatal("New without a signer succeeded")
	}
}
