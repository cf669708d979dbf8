// Package kubelet is the node agent: it registers its Node, renews the node's Lease, and
// makes the pods bound to the node real through any CRI runtime.
//
// The shape follows the real kubelet's, smaller:
//
//   - node.go registers the Node and posts its status (capacity, conditions, addresses, node
//     info); the Lease in kube-node-lease is renewed by component-helpers' lease controller.
//   - pods.go keeps the pods bound to the node (an informer on spec.nodeName) and one worker
//     goroutine per pod UID. A worker runs syncPod whenever its pod changes, a container of
//     the pod changes state in the runtime (the relist in pleg.go), or its own timer fires.
//   - sync.go is syncPod: it reads the pod's sandboxes and containers from the runtime,
//     decides what to start, restart or kill, does it, and hands the pod status it computed
//     (status.go) to the status manager, which writes changed statuses through the pods/status
//     subresource.
//   - container.go turns a v1.Container into a CRI ContainerConfig (env in env.go, DNS and
//     /etc/hosts in dns.go, images in images.go); volumes live in package volume, probes and
//     lifecycle hooks in package prober, the HTTPS API on port 10250 in package server.
//   - objects.go serves the configMaps and secrets pods read (volumes, env, pull secrets)
//     from one watch per object, so the resync of an idle pod makes no API request.
//
// The kubelet keeps no state of its own on disk beyond volumes: everything about running
// containers is read back from the runtime through the labels and annotations it puts on
// sandboxes and containers (io.kubernetes.pod.uid, io.kubernetes.container.name, ...), so a
// restarted kubelet resumes managing what it left running without touching it.
package kubelet
