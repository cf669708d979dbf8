// Package resourcemetrics serves the resource metrics API (metrics.k8s.io/v1beta1 NodeMetrics
// and PodMetrics) from inside the API server, so that `kubectl top` and the horizontal pod
// autoscaler work without installing metrics-server. It follows metrics-server's design:
//
//   - Scraper lists the Ready nodes every Resolution (default 15s), fetches each kubelet's
//     /stats/summary over HTTPS with the API server's kubelet client certificate, and stores
//     the batch, at most 32 nodes at a time. A node that cannot be reached is left out of
//     that batch and logged once per outage; it never fails the others or a request.
//     Hollow nodes (annotation nanokube.io/hollow=true) have no kubelet API and are skipped.
//   - Store keeps the last two samples of every node and container. CPU usage is the rate of
//     the cumulative usageCoreNanoSeconds between the two samples (window = the time between
//     them); with one sample, or after a container restart, the kubelet's own usageNanoCores
//     is used when present. Memory is workingSetBytes of the newest sample. A node or pod
//     without usable CPU and memory values is not reported (a pod needs them for every
//     container), as metrics-server does.
//   - Handler answers GET (one object or a list, label and field selectors on
//     metadata.name/metadata.namespace) as JSON, protobuf or a meta.k8s.io Table. An
//     unknown or not yet measured object is 404; a list with nothing measured yet is an empty
//     list, which kubectl top turns into "metrics not available yet". Object labels come from
//     the nodes and pods the API server stores.
//
// The package knows nothing of the API server: it reads nodes and pods through Source.
// All methods are safe for concurrent use.
package resourcemetrics
