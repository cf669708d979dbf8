// Package quota is the pure core of ResourceQuota, shared by the API server's admission and
// the resourcequota controller: what an object uses (Usage), which quotas it falls under
// (Matches), the resources a pod must specify (Constraints), and Kubernetes' arithmetic and
// messages over ResourceLists. It does no I/O; callers own every object they pass in, and
// returned lists are fresh.
package quota
