// Package apiserver is nanokube's Kubernetes API server: the REST API that kubectl,
// client-go and Helm use, written on net/http with apimachinery's codecs and helpers.
//
// One generic handler serves every resource described in registry (see
// registry/builtin): the request path is parsed into a request (verb, group-version,
// resource, namespace, name, subresource), the body is decoded by content type (JSON, YAML,
// protobuf; unknown fields per fieldValidation), and the response is encoded as the client
// negotiated, transformed into a meta.k8s.io/v1 Table or metadata-only objects on request.
//
// Writes follow kube-apiserver's order: decode, metadata (uid, creationTimestamp,
// generateName, generation), the strategy's PrepareForCreate and Default, validation
// (metadata generically, the rest by the strategy), admission (NamespaceLifecycle, the
// ServiceAccount default, Service IP and NodePort allocation), managedFields, then one etcd
// transaction. Updates, patches and subresource writes share one read-modify-write loop
// (updateObject) that retries on conflicts only when the client gave no resourceVersion, and
// writes nothing when nothing changed. Deletion honours finalizers, propagation policies
// (orphan and foregroundDeletion finalizers for the garbage collector) and the grace period
// of pods bound to a node.
//
// Reads of one object go to etcd; lists are consistent reads served from the watch cache
// once it has caught up with etcd (or of any age with resourceVersion=0), with continuations
// read from etcd at the first page's revision; watches are served from the cache
// (storage.Cacher).
//
// Every authenticated request (its user carries system:authenticated) is authorized before
// it is served (authorization.go): the attributes kube-apiserver's RequestInfo would give
// (verb, group, resource, subresource, namespace, name, or the non-resource path), after any
// Impersonate-* headers were authorized and applied, go to the configured authorizer
// (RBAC by default, or AlwaysAllow; system:masters is always allowed; see package authz).
// Denials are 403 Status errors with kube-apiserver's messages. Writes of Roles,
// ClusterRoles and their bindings are checked for escalation (escalation.go); the default
// policy is reconciled at every start (policy_bootstrap.go); the review APIs
// (SubjectAccessReviews, SelfSubjectRulesReview, SelfSubjectReview) are answered by the
// authorizer and never stored (reviews.go).
//
// Storage errors are mapped to Status codes in one place (toStatus); handlers return errors
// and never write partial objects.
//
// The resource metrics API (metrics.k8s.io/v1beta1, for kubectl top and the autoscaler) is
// served by the server itself from kubelet summaries it scrapes (package resourcemetrics,
// mounted and advertised in resourcemetrics_glue.go), without an aggregation layer.
package apiserver
