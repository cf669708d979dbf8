// Package resourcequota keeps every ResourceQuota's status right, as Kubernetes' resource
// quota controller does: status.hard mirrors spec.hard, and status.used is recomputed from
// the objects in the quota's namespace that its scopes select.
//
// The API server's quota admission charges status.used as objects are created; this
// controller is the source of truth that gives usage back when objects are deleted or pods
// finish, and repairs it after a restart. Its queue holds quota keys (namespace/name). A quota
// is synced when it is created, when its spec.hard changes, when an object it may count is
// deleted or a pod finishes (replenishment), and on every full resync. It does not react to
// creations: admission has already charged them, and a recount from a lagging informer could
// only undercount.
//
// Pods, Services, ConfigMaps, Secrets, PersistentVolumeClaims and ResourceQuotas are
// counted from shared informers; other count/<resource>.<group> names are
// counted with a metadata-only LIST at sync time.
package resourcequota
