package authz

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations of the default policy, as in Kubernetes.
const (
	AutoUpdateAnnotation = "rbac.authorization.kubernetes.io/autoupdate"
	BootstrapLabel       = "kubernetes.io/bootstrapping"
	AggregateToAdmin     = "rbac.authorization.k8s.io/aggregate-to-admin"
	AggregateToEdit      = "rbac.authorization.k8s.io/aggregate-to-edit"
	AggregateToView      = "rbac.authorization.k8s.io/aggregate-to-view"
)

var (
	read      = []string{"get", "list", "watch"}
	write     = []string{"create", "delete", "deletecollection", "patch", "update"}
	readWrite = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)

// ruleBuilder keeps the policy tables below close to Kubernetes' bootstrappolicy.
type ruleBuilder struct{ r rbacv1.PolicyRule }

func rule(verbs ...string) *ruleBuilder {
	return &ruleBuilder{rbacv1.PolicyRule{Verbs: verbs}}
}
func (b *ruleBuilder) groups(g ...string) *ruleBuilder    { b.r.APIGroups = g; return b }
func (b *ruleBuilder) resources(r ...string) *ruleBuilder { b.r.Resources = r; return b }
func (b *ruleBuilder) names(n ...string) *ruleBuilder     { b.r.ResourceNames = n; return b }
func (b *ruleBuilder) urls(u ...string) rbacv1.PolicyRule { b.r.NonResourceURLs = u; return b.r }
func (b *ruleBuilder) rule() rbacv1.PolicyRule            { return b.r }

const (
	legacy        = ""
	apps          = "apps"
	autoscaling   = "autoscaling"
	batch         = "batch"
	policyGroup   = "policy"
	networking    = "networking.k8s.io"
	coordination  = "coordination.k8s.io"
	discoveryG    = "discovery.k8s.io"
	events        = "events.k8s.io"
	rbacGroup     = "rbac.authorization.k8s.io"
	authzGroup    = "authorization.k8s.io"
	authnGroup    = "authentication.k8s.io"
	certificates  = "certificates.k8s.io"
	storageGroup  = "storage.k8s.io"
	nodeGroup     = "node.k8s.io"
	schedulingGrp = "scheduling.k8s.io"
)

func eventsRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		rule("create", "update", "patch").groups(legacy, events).resources("events").rule(),
	}
}

func clusterRole(name string, labels map[string]string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	l := map[string]string{BootstrapLabel: "rbac-defaults"}
	for k, v := range labels {
		l[k] = v
	}
	return &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{Kind: "ClusterRole", APIVersion: "rbac.authorization.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l, Annotations: map[string]string{AutoUpdateAnnotation: "true"}},
		Rules:      rules,
	}
}

func aggregated(name string, labels map[string]string, selectLabel string) *rbacv1.ClusterRole {
	cr := clusterRole(name, labels)
	cr.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{selectLabel: "true"}}}}
	return cr
}

// NodeRules are the rules of the system:node ClusterRole, which the Node authorizer applies
// to every node for the resources its graph does not decide. They follow Kubernetes'
// bootstrappolicy.NodeRules with one narrowing: secrets and config maps are get only, not
// get/list/watch, so that binding the role (as a cluster without the Node authorizer must)
// does not let a node list every secret. With the Node authorizer the graph decides those.
func NodeRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		rule("create").groups(authnGroup).resources("tokenreviews").rule(),
		rule("create").groups(authzGroup).resources("subjectaccessreviews", "localsubjectaccessreviews").rule(),
		rule(read...).groups(legacy).resources("services").rule(),
		rule("create", "get", "list", "watch").groups(legacy).resources("nodes").rule(),
		rule("update", "patch").groups(legacy).resources("nodes/status").rule(),
		rule("update", "patch").groups(legacy).resources("nodes").rule(),
		rule("create", "update", "patch").groups(legacy, events).resources("events").rule(),
		rule(read...).groups(legacy).resources("pods").rule(),
		rule("create", "delete").groups(legacy).resources("pods").rule(),
		rule("update", "patch").groups(legacy).resources("pods/status").rule(),
		rule("create").groups(legacy).resources("pods/eviction").rule(),
		rule("get").groups(legacy).resources("secrets", "configmaps").rule(),
		rule("get").groups(legacy).resources("persistentvolumeclaims", "persistentvolumes").rule(),
		rule("get").groups(legacy).resources("endpoints").rule(),
		rule("create", "get", "list", "watch").groups(certificates).resources("certificatesigningrequests").rule(),
		rule("get", "create", "update", "patch", "delete").groups(coordination).resources("leases").rule(),
		rule("get").groups(storageGroup).resources("volumeattachments").rule(),
		rule("create").groups(legacy).resources("serviceaccounts/token").rule(),
		rule("get", "update", "patch").groups(legacy).resources("persistentvolumeclaims/status").rule(),
		rule(read...).groups(storageGroup).resources("csidrivers").rule(),
		rule("get", "create", "update", "patch", "delete").groups(storageGroup).resources("csinodes").rule(),
		rule(read...).groups(nodeGroup).resources("runtimeclasses").rule(),
	}
}

// DefaultClusterRoles is the ClusterRole part of the default policy, created and reconciled
// at API server start.
func DefaultClusterRoles() []*rbacv1.ClusterRole {
	nodeRules := NodeRules()
	return []*rbacv1.ClusterRole{
		clusterRole("cluster-admin", map[string]string{},
			rule("*").groups("*").resources("*").rule(),
			rule("*").urls("*")),
		aggregated("admin", nil, AggregateToAdmin),
		aggregated("edit", map[string]string{AggregateToAdmin: "true"}, AggregateToEdit),
		aggregated("view", map[string]string{AggregateToEdit: "true"}, AggregateToView),
		clusterRole("system:aggregate-to-admin", map[string]string{AggregateToAdmin: "true"},
			rule(readWrite...).groups(rbacGroup).resources("roles", "rolebindings").rule(),
			rule("create").groups(authzGroup).resources("localsubjectaccessreviews").rule()),
		clusterRole("system:aggregate-to-edit", map[string]string{AggregateToEdit: "true"},
			rule("impersonate").groups(legacy).resources("serviceaccounts").rule(),
			rule(write...).groups(legacy).resources("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward").rule(),
			rule("create").groups(legacy).resources("pods/eviction").rule(),
			rule(write...).groups(legacy).resources("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
				"services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events").rule(),
			rule("create").groups(legacy).resources("serviceaccounts/token").rule(),
			rule(write...).groups(apps).resources("statefulsets", "statefulsets/scale", "daemonsets", "deployments",
				"deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale").rule(),
			rule(write...).groups(autoscaling).resources("horizontalpodautoscalers").rule(),
			rule(write...).groups(batch).resources("jobs", "cronjobs").rule(),
			rule(write...).groups(networking).resources("networkpolicies", "ingresses").rule(),
			rule(write...).groups(policyGroup).resources("poddisruptionbudgets").rule(),
			rule(read...).groups(legacy).resources("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy").rule()),
		clusterRole("system:aggregate-to-view", map[string]string{AggregateToView: "true"},
			rule(read...).groups(legacy).resources("pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
				"services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps").rule(),
			rule(read...).groups(legacy).resources("limitranges", "resourcequotas", "bindings", "events",
				"pods/status", "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log").rule(),
			rule(read...).groups(legacy).resources("namespaces").rule(),
			rule(read...).groups(discoveryG).resources("endpointslices").rule(),
			rule(read...).groups(apps).resources("controllerrevisions", "statefulsets", "statefulsets/scale", "statefulsets/status",
				"daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
				"replicasets", "replicasets/scale", "replicasets/status").rule(),
			rule(read...).groups(autoscaling).resources("horizontalpodautoscalers", "horizontalpodautoscalers/status").rule(),
			rule(read...).groups(batch).resources("jobs", "jobs/status", "cronjobs", "cronjobs/status").rule(),
			rule(read...).groups(policyGroup).resources("poddisruptionbudgets", "poddisruptionbudgets/status").rule(),
			rule(read...).groups(networking).resources("networkpolicies", "ingresses", "ingresses/status").rule()),
		clusterRole("system:aggregated-metrics-reader", map[string]string{AggregateToView: "true", AggregateToEdit: "true", AggregateToAdmin: "true"},
			rule(read...).groups("metrics.k8s.io").resources("pods", "nodes").rule()),
		clusterRole("system:discovery", nil,
			rule("get").urls("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/")),
		clusterRole("system:basic-user", nil,
			rule("create").groups(authzGroup).resources("selfsubjectaccessreviews", "selfsubjectrulesreviews").rule(),
			rule("create").groups(authnGroup).resources("selfsubjectreviews").rule()),
		clusterRole("system:public-info-viewer", nil,
			rule("get").urls("/healthz", "/livez", "/readyz", "/version", "/version/")),
		clusterRole("system:service-account-issuer-discovery", nil,
			rule("get").urls("/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks", "/openid/v1/jwks/")),
		clusterRole("system:node", nil, nodeRules...),
		clusterRole("system:node-proxier", nil, append([]rbacv1.PolicyRule{
			rule("list", "watch").groups(legacy).resources("services", "endpoints").rule(),
			rule("get", "list", "watch").groups(legacy).resources("nodes").rule(),
			rule("list", "watch").groups(discoveryG).resources("endpointslices").rule(),
		}, eventsRules()...)...),
		// Kubernetes' system:kube-dns reads endpoints and services; nanokube's cluster DNS
		// (internal/dns) answers from EndpointSlices instead of Endpoints, so it may list and
		// watch those too.
		clusterRole("system:kube-dns", nil,
			rule("list", "watch").groups(legacy).resources("endpoints", "services").rule(),
			rule("list", "watch").groups(discoveryG).resources("endpointslices").rule()),
		clusterRole("system:kube-scheduler", nil, append(eventsRules(),
			rule("create").groups(coordination).resources("leases").rule(),
			rule("get", "update").groups(coordination).resources("leases").names("kube-scheduler").rule(),
			rule(read...).groups(legacy).resources("nodes").rule(),
			rule("get", "list", "watch", "delete").groups(legacy).resources("pods").rule(),
			rule("create").groups(legacy).resources("pods/binding", "bindings").rule(),
			rule("patch", "update").groups(legacy).resources("pods/status").rule(),
			rule(read...).groups(legacy).resources("replicationcontrollers", "services", "namespaces").rule(),
			rule(read...).groups(apps).resources("replicasets", "statefulsets").rule(),
			rule(read...).groups(policyGroup).resources("poddisruptionbudgets").rule(),
			rule(read...).groups(legacy).resources("persistentvolumeclaims", "persistentvolumes").rule(),
			rule("create").groups(authnGroup).resources("tokenreviews").rule(),
			rule("create").groups(authzGroup).resources("subjectaccessreviews").rule(),
			rule(read...).groups(storageGroup).resources("csinodes", "csidrivers", "csistoragecapacities", "storageclasses").rule(),
			rule(read...).groups(schedulingGrp).resources("priorityclasses").rule(),
		)...),
		clusterRole("system:kube-controller-manager", nil, append(eventsRules(),
			rule("create").groups(coordination).resources("leases").rule(),
			rule("get", "update").groups(coordination).resources("leases").names("kube-controller-manager").rule(),
			rule("create").groups(legacy).resources("secrets", "serviceaccounts").rule(),
			rule("delete").groups(legacy).resources("secrets").rule(),
			rule("get").groups(legacy).resources("namespaces", "secrets", "serviceaccounts").rule(),
			rule("update").groups(legacy).resources("secrets", "serviceaccounts").rule(),
			rule("create").groups(authnGroup).resources("tokenreviews").rule(),
			rule("create").groups(authzGroup).resources("subjectaccessreviews").rule(),
			rule("list", "watch").groups("*").resources("*").rule(),
			rule("create").groups(legacy).resources("serviceaccounts/token").rule(),
		)...),
		clusterRole("system:volume-scheduler", nil,
			rule("get", "list", "watch", "update", "patch").groups(legacy).resources("persistentvolumes").rule(),
			rule(read...).groups(storageGroup).resources("storageclasses").rule(),
			rule("get", "list", "watch", "update", "patch").groups(legacy).resources("persistentvolumeclaims").rule()),
		// Kubernetes runs each controller of kube-controller-manager under its own service
		// account (--use-service-account-credentials), each bound to a
		// system:controller:<name> role. nanokube's controller manager runs all its
		// controllers under the one identity system:kube-controller-manager, so this role
		// holds what they need together: the garbage collector and the namespace controller
		// already need get/list/watch/update/patch/delete/deletecollection on everything in
		// Kubernetes, the other controllers create the objects they own, the cluster role
		// aggregator must escalate, the CSR controllers approve and sign. Not granted:
		// impersonate, bind, and non-resource URLs beyond discovery. A deliberate deviation.
		clusterRole("nanokube:kube-controller-manager:controllers", nil,
			rule("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection").groups("*").resources("*").rule(),
			rule("escalate").groups(rbacGroup).resources("clusterroles").rule(),
			rule("approve", "sign").groups(certificates).resources("signers").rule()),
		// What nanokube's kubelet needs beyond system:node: it lists PersistentVolumes to
		// sweep the data of deleted local-path volumes from its disk.
		clusterRole("nanokube:node", nil,
			rule("list", "watch").groups(legacy).resources("persistentvolumes").rule()),
		clusterRole("system:node-bootstrapper", nil,
			rule("create", "get", "list", "watch").groups(certificates).resources("certificatesigningrequests").rule()),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:nodeclient", nil,
			rule("create").groups(certificates).resources("certificatesigningrequests/nodeclient").rule()),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", nil,
			rule("create").groups(certificates).resources("certificatesigningrequests/selfnodeclient").rule()),
	}
}

// RetiredClusterRoleBindings are default bindings of earlier nanokube versions that the
// API server deletes at start: nanokube:nodes bound system:node, get of every secret and
// config map included, to every node, which the Node authorizer replaces.
func RetiredClusterRoleBindings() []string {
	return []string{"nanokube:nodes"}
}

func binding(name, role string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta: metav1.TypeMeta{Kind: "ClusterRoleBinding", APIVersion: "rbac.authorization.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{BootstrapLabel: "rbac-defaults"},
			Annotations: map[string]string{AutoUpdateAnnotation: "true"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: subjects,
	}
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func serviceAccount(namespace, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}

// DefaultClusterRoleBindings is the binding part of the default policy: Kubernetes' own
// bindings plus nanokube's additions (see the package doc).
func DefaultClusterRoleBindings() []*rbacv1.ClusterRoleBinding {
	return []*rbacv1.ClusterRoleBinding{
		binding("cluster-admin", "cluster-admin", group(MastersGroup)),
		binding("system:discovery", "system:discovery", group(AuthenticatedGroup)),
		binding("system:basic-user", "system:basic-user", group(AuthenticatedGroup)),
		binding("system:public-info-viewer", "system:public-info-viewer", group(AuthenticatedGroup), group(UnauthenticatedGroup)),
		binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery", group(ServiceAccountsGroup)),
		binding("system:node", "system:node"), // no subjects: the Node authorizer applies its rules
		binding("system:node-proxier", "system:node-proxier", user("system:kube-proxy")),
		// Kubernetes binds it to the kube-system/kube-dns service account CoreDNS runs as;
		// the server's in-process DNS is the user system:kube-dns.
		binding("system:kube-dns", "system:kube-dns", serviceAccount("kube-system", "kube-dns"), user("system:kube-dns")),
		binding("system:kube-scheduler", "system:kube-scheduler", user("system:kube-scheduler")),
		binding("system:volume-scheduler", "system:volume-scheduler", user("system:kube-scheduler")),
		binding("system:kube-controller-manager", "system:kube-controller-manager", user("system:kube-controller-manager")),
		binding("nanokube:kube-controller-manager:controllers", "nanokube:kube-controller-manager:controllers", user("system:kube-controller-manager")),
		binding("nanokube:nodes:proxier", "system:node-proxier", group(NodesGroup)),
		binding("nanokube:nodes:extras", "nanokube:node", group(NodesGroup)),
		binding("nanokube:kubelet-bootstrap", "system:node-bootstrapper", group(BootstrappersGroup)),
		binding("nanokube:kubelet-bootstrap:nodeclient", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", group(BootstrappersGroup)),
		binding("nanokube:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", group(NodesGroup)),
	}
}
