// Package server is the kubelet's HTTPS API (port 10250): the endpoint the API server proxies
// pods/log, pods/exec, pods/attach, pods/portforward and nodes/proxy to, and the one
// metrics-server and Prometheus scrape.
//
//	GET  /healthz                                   "ok", without authentication
//	GET  /pods                                      v1.PodList of Host.Pods()
//	GET  /containerLogs/{ns}/{pod}/{container}      follow, previous, sinceSeconds, sinceTime,
//	                                                timestamps, tailLines, limitBytes
//	*    /exec/{ns}/{pod}[/{uid}]/{container}       command (repeated), stdin, stdout, stderr, tty
//	*    /attach/{ns}/{pod}[/{uid}]/{container}     stdin, stdout, stderr, tty
//	*    /portForward/{ns}/{pod}[/{uid}]            port (repeated, WebSocket only)
//	GET  /stats/summary                             stats/v1alpha1 Summary
//	GET  /metrics                                   Prometheus text
//
// The server keeps no pod state of its own. Host says which pods the kubelet runs (and their
// UIDs and specs); every container is found through CRI by the labels the kubelet puts on its
// sandboxes and containers:
//
//	io.kubernetes.pod.name, io.kubernetes.pod.namespace, io.kubernetes.pod.uid   sandboxes, containers
//	io.kubernetes.container.name                                                  containers
//	io.kubernetes.container.restartCount (annotation)                             containers
//
// For a pod's container name the instances are ordered newest first by CreatedAt (then by
// restart count). Logs read the newest started instance, previous=true the one before it, from
// the file ContainerStatus reports as LogPath (CRI log format, read by k8s.io/cri-client's logs
// package); a follow ends when that container exits, the client goes away or the server stops.
// Exec and attach use the running instance in the pod's ready sandbox, port-forward the ready
// sandbox itself.
//
// Exec, attach and port-forward never redirect: the runtime's CRI call returns a URL on its
// streaming server and the request, upgrade headers included, is proxied to it with
// apimachinery's UpgradeAwareHandler, so SPDY (X-Stream-Protocol-Version) and WebSocket
// (Sec-WebSocket-Protocol: v5.channel.k8s.io, SPDY/3.1+portforward.k8s.io) reach the runtime,
// which negotiates and serves them. The server speaks HTTP/1.1 only, as upgrades need.
//
// Authentication: TLS client certificates signed by Config.ClientCA; every path but /healthz
// answers 401 without one. There is no authorization (any verified client may do anything).
// TODO: bearer tokens through TokenReview, and SubjectAccessReview for authorization.
//
// Errors are plain text, as the kubelet writes them: 404 for an unknown pod or container name,
// 400 for bad parameters and for a container that is not (or no longer) available, 500 for a
// failing runtime, mapped from the CRI call's gRPC code where it has one.
//
// /stats/summary is built on each request from ListPodSandbox, ListPodSandboxStats,
// ListContainers and ListContainerStats, plus /proc/stat, /proc/meminfo and statfs("/") for the
// node. usageNanoCores is the rate between this request's cumulative CPU sample and the previous
// request's, so the first request omits it.
package server
