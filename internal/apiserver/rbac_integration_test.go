package apiserver_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nanokube/nanokube/internal/apitest"
	"github.com/nanokube/nanokube/internal/pki"
	"github.com/nanokube/nanokube/internal/server"
)

// userClient is a client authenticated by a client certificate of the cluster CA for user
// cn in groups.
func userClient(t *testing.T, c *apitest.Cluster, cn string, groups ...string) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(userConfig(t, c, cn, groups...))
}

func userConfig(t *testing.T, c *apitest.Cluster, cn string, groups ...string) *rest.Config {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(c.Dir, "pki", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	ca := &pki.CA{Cert: caCert, Key: pair.PrivateKey.(crypto.Signer), CertPEM: certPEM}
	cert, key, err := pki.IssueClientCert(ca, cn, groups, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.CertData, cfg.KeyData = cert, key
	return cfg
}

func wantForbidden(t *testing.T, err error, msg string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Fatalf("want 403 Forbidden %q, got %v", msg, err)
	}
	if msg != "" && err.Error() != msg {
		t.Fatalf("forbidden message\n got: %s\nwant: %s", err.Error(), msg)
	}
}

// eventually polls cond until it holds: the authorizer reads the watch caches, which trail
// writes by milliseconds, as kube-apiserver's informer-fed RBAC does.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("%s: not within 10s", what)
	}
}

func TestRBACEnforcement(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	admin := c.Client
	bob := userClient(t, c, "bob")

	// Denials carry kube-apiserver's exact messages.
	_, err := bob.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default"`)
	_, err = bob.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	wantForbidden(t, err, `nodes "n1" is forbidden: User "bob" cannot get resource "nodes" in API group "" at the cluster scope`)
	err = bob.CoreV1().Pods("default").GetLogs("p1", &corev1.PodLogOptions{}).Do(ctx).Error()
	wantForbidden(t, err, `pods "p1" is forbidden: User "bob" cannot get resource "pods/log" in API group "" in the namespace "default"`)
	_, err = bob.AppsV1().Deployments("default").GetScale(ctx, "web", metav1.GetOptions{})
	wantForbidden(t, err, `deployments.apps "web" is forbidden: User "bob" cannot get resource "deployments/scale" in API group "apps" in the namespace "default"`)
	err = bob.CoreV1().RESTClient().Get().AbsPath("/metrics").Do(ctx).Error()
	wantForbidden(t, err, `forbidden: User "bob" cannot get path "/metrics"`)

	// Discovery, health and version come from the default roles of system:authenticated.
	if _, err := bob.Discovery().ServerGroups(); err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if _, err := bob.Discovery().ServerVersion(); err != nil {
		t.Fatalf("version: %v", err)
	}
	if err := bob.CoreV1().RESTClient().Get().AbsPath("/healthz").Do(ctx).Error(); err != nil {
		t.Fatalf("healthz: %v", err)
	}

	// A Role and RoleBinding grant exactly what they say.
	if _, err := admin.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}},
			{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"allowed"}},
			{Verbs: []string{"get"}, APIGroups: []string{"apps"}, Resources: []string{"*/scale"}},
		}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind(t, admin, "default", "bob-reads", rbacv1.RoleRef{Kind: "Role", Name: "pod-reader"}, rbacv1.Subject{Kind: "User", Name: "bob"})
	eventually(t, "bob lists pods", func() bool {
		_, err := bob.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil
	})
	_, err = bob.CoreV1().Pods("default").Create(ctx, testPod("nope"), metav1.CreateOptions{})
	wantForbidden(t, err, `pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the namespace "default"`)
	_, err = bob.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "kube-system"`)
	if _, err := bob.CoreV1().ConfigMaps("default").Get(ctx, "allowed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("named configmap: want NotFound (allowed, absent), got %v", err)
	}
	_, err = bob.CoreV1().ConfigMaps("default").Get(ctx, "other", metav1.GetOptions{})
	wantForbidden(t, err, `configmaps "other" is forbidden: User "bob" cannot get resource "configmaps" in API group "" in the namespace "default"`)
	if _, err := bob.AppsV1().Deployments("default").GetScale(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("*/scale: want NotFound (allowed, absent), got %v", err)
	}
	_, err = bob.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	wantForbidden(t, err, "")

	// Groups bind too; a binding to a missing role explains itself.
	dave := userClient(t, c, "dave", "devs")
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "node-reader"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"nodes"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clusterBind(t, admin, "devs-read-nodes", "node-reader", rbacv1.Subject{Kind: "Group", Name: "devs"})
	clusterBind(t, admin, "devs-missing", "missing", rbacv1.Subject{Kind: "Group", Name: "devs"})
	eventually(t, "dave lists nodes", func() bool {
		_, err := dave.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err == nil
	})
	_, err = dave.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `secrets is forbidden: User "dave" cannot list resource "secrets" in API group "" in the namespace "default": RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found`)

	// system:masters (the admin) may do anything; impersonation is authorized and applied.
	asBob := *c.Config
	asBob.Impersonate = rest.ImpersonationConfig{UserName: "bob"}
	_, err = kubernetes.NewForConfigOrDie(&asBob).CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `secrets is forbidden: User "bob" cannot list resource "secrets" in API group "" in the namespace "default"`)
	bobAsAlice := userConfig(t, c, "bob")
	bobAsAlice.Impersonate = rest.ImpersonationConfig{UserName: "alice"}
	_, err = kubernetes.NewForConfigOrDie(bobAsAlice).CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope`)
}

func bind(t *testing.T, c kubernetes.Interface, ns, name string, ref rbacv1.RoleRef, subjects ...rbacv1.Subject) {
	t.Helper()
	ref.APIGroup = rbacv1.GroupName
	if _, err := c.RbacV1().RoleBindings(ns).Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: ref, Subjects: subjects}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func clusterBind(t *testing.T, c kubernetes.Interface, name, role string, subjects ...rbacv1.Subject) {
	t.Helper()
	if _, err := c.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: subjects}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestRBACEscalationPrevention(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	admin := c.Client
	alice := userClient(t, c, "alice")
	// alice manages roles and bindings in default and may read pods there.
	if _, err := admin.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "rbac-manager"},
		Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"create", "update", "get"}, APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "rolebindings"}},
			{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}},
		}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind(t, admin, "default", "alice-manages", rbacv1.RoleRef{Kind: "Role", Name: "rbac-manager"}, rbacv1.Subject{Kind: "User", Name: "alice"})
	podsRole := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}
	eventually(t, "alice creates a role she holds", func() bool {
		_, err := alice.RbacV1().Roles("default").Create(ctx, podsRole, metav1.CreateOptions{})
		return err == nil
	})
	secrets := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secrets"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"secrets"}}}}
	_, err := alice.RbacV1().Roles("default").Create(ctx, secrets, metav1.CreateOptions{})
	wantForbidden(t, err, "roles.rbac.authorization.k8s.io \"secrets\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) "+
		"is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}")
	// Widening a role she holds is an escalation too.
	cur, err := alice.RbacV1().Roles("default").Get(ctx, "pods", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Rules[0].Verbs = append(cur.Rules[0].Verbs, "delete")
	_, err = alice.RbacV1().Roles("default").Update(ctx, cur, metav1.UpdateOptions{})
	wantForbidden(t, err, "")

	// Binding a role she holds is fine; binding cluster-admin is not.
	bind(t, alice, "default", "bob-pods", rbacv1.RoleRef{Kind: "Role", Name: "pods"}, rbacv1.Subject{Kind: "User", Name: "bob"})
	_, err = alice.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "bob", APIGroup: rbacv1.GroupName}}}, metav1.CreateOptions{})
	wantForbidden(t, err, "rolebindings.rbac.authorization.k8s.io \"bob-admin\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) "+
		"is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}")

	// escalate and bind lift the checks.
	if _, err := admin.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "delegate"},
		Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"escalate"}, APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles"}},
			{Verbs: []string{"bind"}, APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles"}, ResourceNames: []string{"view"}},
		}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind(t, admin, "default", "alice-delegates", rbacv1.RoleRef{Kind: "Role", Name: "delegate"}, rbacv1.Subject{Kind: "User", Name: "alice"})
	eventually(t, "escalate lets alice create the secrets role", func() bool {
		_, err := alice.RbacV1().Roles("default").Create(ctx, secrets, metav1.CreateOptions{})
		return err == nil
	})
	bind(t, alice, "default", "bob-views", rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"}, rbacv1.Subject{Kind: "User", Name: "bob"})

	// Aggregation rules take cluster-admin's powers.
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "cr-writer"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"create"}, APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterroles"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clusterBind(t, admin, "carol-writes", "cr-writer", rbacv1.Subject{Kind: "User", Name: "carol"})
	carol := userClient(t, c, "carol")
	aggregated := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "gather"},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"x": "y"}}}}}
	eventually(t, "carol is refused an aggregation rule", func() bool {
		_, err := carol.RbacV1().ClusterRoles().Create(ctx, aggregated, metav1.CreateOptions{})
		return apierrors.IsForbidden(err) && err.Error() == `clusterroles.rbac.authorization.k8s.io "gather" is forbidden: must have cluster-admin privileges to use the aggregationRule`
	})
}

func TestReviewAPIs(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	admin := c.Client
	bob := userClient(t, c, "bob", "devs")

	listPods := &authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods", Namespace: "default"}
	ssar := func() *authorizationv1.SelfSubjectAccessReview {
		r, err := bob.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: listPods}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := ssar(); r.Status.Allowed {
		t.Fatalf("bob may list pods before any binding: %+v", r.Status)
	}
	if _, err := admin.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind(t, admin, "default", "bob-reads", rbacv1.RoleRef{Kind: "Role", Name: "pod-reader"}, rbacv1.Subject{Kind: "User", Name: "bob"})
	eventually(t, "SelfSubjectAccessReview allows", func() bool { return ssar().Status.Allowed })
	if r := ssar(); r.Status.Reason != `RBAC: allowed by RoleBinding "bob-reads/default" of Role "pod-reader" to User "bob"` {
		t.Errorf("reason %q", r.Status.Reason)
	}

	// SubjectAccessReview and LocalSubjectAccessReview answer for others.
	sar, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: "bob", ResourceAttributes: listPods}}, metav1.CreateOptions{})
	if err != nil || !sar.Status.Allowed {
		t.Fatalf("SAR: %+v %v", sar, err)
	}
	lsar, err := admin.AuthorizationV1().LocalSubjectAccessReviews("default").Create(ctx, &authorizationv1.LocalSubjectAccessReview{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default"},
		Spec: authorizationv1.SubjectAccessReviewSpec{User: "bob",
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "delete", Resource: "pods", Namespace: "default"}}}, metav1.CreateOptions{})
	if err != nil || lsar.Status.Allowed {
		t.Fatalf("LSAR delete: %+v %v", lsar, err)
	}
	_, err = admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: listPods}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "at least one of user or group must be specified") {
		t.Fatalf("SAR without subject: %v", err)
	}
	// bob may not ask about others.
	_, err = bob.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: "eve", ResourceAttributes: listPods}}, metav1.CreateOptions{})
	wantForbidden(t, err, `subjectaccessreviews.authorization.k8s.io is forbidden: User "bob" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope`)

	// Rules review: bob's own rules, the default roles' included.
	rr, err := bob.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "default"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pods, ssarRule, discovery bool
	for _, r := range rr.Status.ResourceRules {
		pods = pods || (slices.Contains(r.Resources, "pods") && slices.Contains(r.Verbs, "list"))
		ssarRule = ssarRule || slices.Contains(r.Resources, "selfsubjectaccessreviews")
	}
	for _, r := range rr.Status.NonResourceRules {
		discovery = discovery || slices.Contains(r.NonResourceURLs, "/apis/*")
	}
	if !pods || !ssarRule || !discovery || rr.Status.Incomplete {
		t.Errorf("rules review: %+v", rr.Status)
	}

	// Who am I.
	who, err := bob.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || who.Status.UserInfo.Username != "bob" || !slices.Equal(who.Status.UserInfo.Groups, []string{"devs", "system:authenticated"}) {
		t.Fatalf("SelfSubjectReview: %+v %v", who, err)
	}

	// Discovery lists the review resources as create-only.
	list, err := bob.Discovery().ServerResourcesForGroupVersion("authorization.k8s.io/v1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range list.APIResources {
		names = append(names, r.Name)
		if !slices.Equal(r.Verbs, []string{"create"}) {
			t.Errorf("%s verbs %v", r.Name, r.Verbs)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"localsubjectaccessreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews", "subjectaccessreviews"}) {
		t.Errorf("authorization.k8s.io/v1 resources: %v", names)
	}
}

func TestDefaultPolicyReconciled(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	crs := c.Client.RbacV1().ClusterRoles()
	for _, name := range []string{"cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
		"system:public-info-viewer", "system:node", "system:node-proxier", "system:kube-scheduler", "system:kube-controller-manager",
		"system:kube-dns", "system:node-bootstrapper", "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
		"system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"} {
		r, err := crs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("default ClusterRole %s: %v", name, err)
		}
		if r.Annotations["rbac.authorization.kubernetes.io/autoupdate"] != "true" || r.Labels["kubernetes.io/bootstrapping"] != "rbac-defaults" {
			t.Errorf("%s metadata: %v %v", name, r.Labels, r.Annotations)
		}
	}
	for _, name := range []string{"cluster-admin", "system:discovery", "system:node", "nanokube:kubelet-bootstrap",
		"system:volume-scheduler", "nanokube:kube-controller-manager:controllers", "system:kube-dns"} {
		if _, err := c.Client.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("default ClusterRoleBinding %s: %v", name, err)
		}
	}
	// A stripped role is restored at the next start; an opted-out one is left alone.
	node, _ := crs.Get(ctx, "system:node", metav1.GetOptions{})
	node.Rules = node.Rules[:1]
	if _, err := crs.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	basic, _ := crs.Get(ctx, "system:basic-user", metav1.GetOptions{})
	basic.Rules = basic.Rules[:1]
	basic.Annotations["rbac.authorization.kubernetes.io/autoupdate"] = "false"
	if _, err := crs.Update(ctx, basic, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The binding of system:node to every node, which earlier versions made, goes at start.
	retired := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "nanokube:nodes",
		Labels:      map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"},
		Annotations: map[string]string{"rbac.authorization.kubernetes.io/autoupdate": "true"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:nodes"}}}
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, retired, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Restart()
	if _, err := c.Client.RbacV1().ClusterRoleBindings().Get(ctx, "nanokube:nodes", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("retired binding nanokube:nodes after a restart: %v", err)
	}
	crs = c.Client.RbacV1().ClusterRoles()
	if node, _ := crs.Get(ctx, "system:node", metav1.GetOptions{}); len(node.Rules) < 10 {
		t.Errorf("system:node not reconciled: %d rules", len(node.Rules))
	}
	if basic, _ := crs.Get(ctx, "system:basic-user", metav1.GetOptions{}); len(basic.Rules) != 1 {
		t.Errorf("autoupdate=false role was changed: %d rules", len(basic.Rules))
	}
}

// TestAlwaysAllowMode runs the control plane with --authorization-mode=AlwaysAllow: any
// authenticated user may do anything, escalation checks included.
func TestAlwaysAllowMode(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan server.Ready, 1)
	go func() {
		done <- server.Run(ctx, server.Config{DataDir: dir, BindAddress: "127.0.0.1", AdvertiseAddress: "127.0.0.1", UnsafeNoFsync: true,
			CompactionInterval: -1, DisableAgent: true, DisableScheduler: true, DisableControllerManager: true,
			AuthorizationMode: "AlwaysAllow", Log: slog.New(slog.DiscardHandler)}, func(r server.Ready) { ready <- r })
	}()
	t.Cleanup(func() { cancel(); <-done })
	var r server.Ready
	select {
	case r = <-ready:
	case err := <-done:
		t.Fatalf("control plane: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("control plane not ready within 60s")
	}
	adminCfg, err := clientcmd.BuildConfigFromFlags("", r.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	bob := kubernetes.NewForConfigOrDie(userConfig(t, &apitest.Cluster{Dir: dir, Config: adminCfg}, "bob"))
	rctx := ctxT(t)
	if _, err := bob.CoreV1().Secrets("default").List(rctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("AlwaysAllow denied a list: %v", err)
	}
	if _, err := bob.RbacV1().ClusterRoles().Create(rctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "all"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("AlwaysAllow refused a role: %v", err)
	}
}

// TestNodeIdentity makes the calls nanokube's kubelet and service proxy make, as a joined
// node (CN system:node:<name>, O system:nodes): the Node authorizer and the default policy
// must allow them all, and nothing beyond (secrets listing across the cluster, for one).
func TestNodeIdentity(t *testing.T) {
	c := apitest.Start(t, apitest.Options{})
	ctx := ctxT(t)
	p1 := testPod("p1")
	p1.Spec.NodeName = "n1"
	if _, err := c.Client.CoreV1().Pods("default").Create(ctx, p1, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := userClient(t, c, "system:node:n1", "system:nodes")
	n, err := node.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("register node: %v", err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	steps := []struct {
		what string
		do   func() error
	}{
		{"update node status", func() error { _, err := node.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); return err }},
		{"watch own node", func() error {
			w, err := node.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=n1"})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"list pods of the node", func() error {
			_, err := node.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n1"})
			return err
		}},
		{"patch pod status", func() error {
			_, err := node.CoreV1().Pods("default").Patch(ctx, "p1", "application/merge-patch+json",
				[]byte(`{"status":{"message":"seen"}}`), metav1.PatchOptions{}, "status")
			return err
		}},
		{"list services", func() error { _, err := node.CoreV1().Services("").List(ctx, metav1.ListOptions{}); return err }},
		{"list endpointslices", func() error {
			_, err := node.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list persistent volumes", func() error { _, err := node.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{}); return err }},
		{"create event", func() error {
			_, err := node.CoreV1().Events("default").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1"},
				InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "n1"}, Reason: "Starting", Type: "Normal"}, metav1.CreateOptions{})
			return err
		}},
		{"list CSRs", func() error {
			_, err := node.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Errorf("%s: %v", s.what, err)
		}
	}
	_, err = node.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	wantForbidden(t, err, `secrets is forbidden: User "system:node:n1" cannot list resource "secrets" in API group "" at the cluster scope: `+
		`can only read namespaced object of this type`)
}
