// Package authz is the API server's authorization: request attributes, the Authorizer
// interface, kube-apiserver's forbidden messages, and the RBAC authorizer with its rule
// matching, escalation checks (Covers) and the default bootstrap policy.
//
// The RBAC authorizer reads Roles, ClusterRoles and their bindings from a Source (the API
// server's watch caches) and keeps an index of them by subject. The index is rebuilt lazily,
// on the first request after the Source's version moved, so a request costs a few map
// lookups and never an etcd round trip; it is eventually consistent with writes, as
// kube-apiserver's informer-fed authorizer is.
//
// Members of system:masters are always allowed (Privileged), as kube-apiserver's
// privileged-group authorizer does before any other mode.
//
// The Node authorizer (Node, NodeGraph) is Kubernetes' "Node" mode: a node (user
// system:node:<name> in group system:nodes) may read the secrets, config maps, claims,
// volumes and service accounts of the pods bound to it, its own Lease, and what the static
// node rules (NodeRules) allow; anything else is left to RBAC. NodeGraph is fed by the API
// server from its pod and persistent volume watch caches and follows pods as they are bound
// and deleted; it is eventually consistent, and the authorizer waits briefly for it to catch
// up before refusing. Union chains the modes of --authorization-mode.
//
// The default policy (DefaultClusterRoles, DefaultClusterRoleBindings) follows Kubernetes'
// bootstrappolicy: system:node is bound to nobody (the Node authorizer applies its rules),
// system:kube-scheduler, system:volume-scheduler, system:kube-controller-manager and
// system:node-proxier are bound to the components' users, system:kube-dns to the
// kube-system/kube-dns service account and, in nanokube, also to the user system:kube-dns
// the server's cluster DNS runs as, its role extended with EndpointSlices. nanokube adds:
// nanokube:node, the little nanokube's kubelet needs beyond system:node (listing persistent
// volumes, bound to system:nodes as nanokube:nodes:extras); system:node-proxier for the
// group system:nodes (nanokube:nodes:proxier), because a joined agent's service proxy runs
// as its node; nanokube:kube-controller-manager:controllers, what all controllers need
// under the one controller manager identity; system:node-bootstrapper and the nodeclient
// CSR role for the group system:bootstrappers (nanokube:kubelet-bootstrap and
// nanokube:kubelet-bootstrap:nodeclient); nodes may renew their own client certificates
// through the selfnodeclient role (nanokube:node-autoapprove-certificate-rotation), as
// kubeadm sets up. RetiredClusterRoleBindings lists bindings of earlier versions that the
// API server deletes.
package authz
