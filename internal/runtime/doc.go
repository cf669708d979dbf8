// Package runtime is nanokube's container runtime: a CRI v1 server (RuntimeService and
// ImageService from k8s.io/cri-api) on a unix socket.
//
//	CRI client ──gRPC──► runtime ──► image.Store      pull, import, content-addressed layers
//	                         │  └──► network.CNI      netns pinned by bind mounts, libcni
//	                         └─────► container.*      OCI spec, runc, per-container shim
//
// State lives under Config.Root and survives restarts:
//
//	image/                 the image store (see package image)
//	images/                tarballs imported at start (air-gapped nodes)
//	sandboxes/<id>/        sandbox.json, ns/{net,ipc,uts}, hostname, hosts, resolv.conf
//	containers/<id>/       container.json, the OCI bundle (config.json), rootfs overlay mount,
//	                       and the shim's files (shim.json, shim.pid, exit.json)
//	runc/                  runc's own state directory
//	bin/                   the embedded shim program, written at start (see package shimbin)
//	cni/                   CNI result cache and IPAM state
//
// No pause container: a sandbox's network, IPC and UTS namespaces are pinned by bind mounts
// and each container's runc spec joins them by path. Containers are children of their shim
// (see packages container and shim), never of the runtime, so the runtime can restart at
// any time; New reloads every sandbox and container from disk.
//
// Status and list calls are answered from memory, for the kubelet relists every second: the
// runtime holds a pidfd on each running shim (found once from shim.pid and checked against
// /proc once), so a running container's state costs one poll and one failed open of its exit
// record; the record, once read, is kept, for it is final.
//
// Errors inside the package carry the classes of package errdefs; the gRPC interceptor turns
// them into status codes, so every handler simply returns its error.
package runtime
