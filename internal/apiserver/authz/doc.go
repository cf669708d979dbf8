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
// The default policy (DefaultClusterRoles, DefaultClusterRoleBindings) follows Kubernetes'
// bootstrappolicy. nanokube has no Node authorizer yet, so in its place the policy binds
// system:node and system:node-proxier to the group system:nodes (ClusterRoleBindings
// nanokube:nodes and nanokube:nodes:proxier) together with nanokube:node, the little
// nanokube's kubelet needs beyond system:node (nanokube:nodes:extras), and system:node-bootstrapper and the nodeclient
// CSR role to the group system:bootstrappers (nanokube:kubelet-bootstrap and
// nanokube:kubelet-bootstrap:nodeclient); nodes may renew their own client certificates
// through the selfnodeclient role (nanokube:node-autoapprove-certificate-rotation), as
// kubeadm sets up.
package authz
