// Package prober runs the kubelet's container probes (liveness, readiness, startup) and
// lifecycle hooks (postStart, preStop), with the semantics and messages of the real kubelet's
// pkg/kubelet/prober and pkg/kubelet/lifecycle.
//
// Probe and RunHook run one attempt and block until it ends: a probe is bounded by its
// timeoutSeconds, a hook only by the caller's ctx. Exec goes through an Execer (the CRI
// client); httpGet, tcpSocket and grpc connect from the kubelet to the pod IP (or the
// action's host), without proxy, keep-alives or TLS verification.
//
// Manager owns the periodic probing. The kubelet calls Sync after each pod sync with the
// containers the runtime reports running; the Manager keeps one goroutine per container ID
// and probe kind and forgets a container ID as soon as a Sync no longer lists it, so a
// restarted container (a new ID) starts with fresh results. Per worker, as in the kubelet:
//
//   - the first attempt comes once initialDelaySeconds have passed since the container's
//     StartedAt, then one every periodSeconds (default 10); each attempt is bounded by
//     timeoutSeconds (default 1);
//   - a result is adopted after successThreshold (readiness only, default 1) or
//     failureThreshold (default 3) attempts in a row give it;
//   - liveness and readiness do not run until the startup probe has succeeded; the startup
//     probe then stops, and liveness and readiness run at once;
//   - after a liveness or startup failure the worker stops: the kubelet is expected to kill
//     the container (and record the Killing event); its replacement gets new workers;
//   - while the pod is being deleted, liveness and startup stop and report success;
//     readiness keeps running;
//   - every failed attempt records a Warning "Unhealthy" event "<Kind> probe failed: <output>"
//     on the pod with fieldPath spec.containers{name}; an attempt that could not run (an
//     unknown named port) records "<Kind> probe errored and resulted in unknown state: ..."
//     and leaves the result as it was; an HTTP redirect to another host is a success with a
//     "ProbeWarning" event.
//
// Ready, Started and LivenessFailed read the results without blocking; onChange is called
// from a worker goroutine, without locks held, whenever a result flips, so the kubelet can
// re-sync the pod and post its status. It may call back into the Manager.
package prober
