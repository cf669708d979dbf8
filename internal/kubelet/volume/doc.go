// Package volume prepares the volumes of a pod on the node and turns a container's
// volumeMounts into CRI mounts. It owns everything under <podsDir>/<pod uid>/volumes and lays
// it out as the real kubelet does:
//
//	<podsDir>/<uid>/volumes/kubernetes.io~empty-dir/<name>     emptyDir (tmpfs if medium: Memory)
//	<podsDir>/<uid>/volumes/kubernetes.io~configmap/<name>     configMap (on disk)
//	<podsDir>/<uid>/volumes/kubernetes.io~secret/<name>        secret (tmpfs)
//	<podsDir>/<uid>/volumes/kubernetes.io~downward-api/<name>  downwardAPI (tmpfs)
//	<podsDir>/<uid>/volumes/kubernetes.io~projected/<name>     projected (tmpfs)
//	<podsDir>/<uid>/volumes/kubernetes.io~local-volume/<pv>    persistentVolumeClaim (bind mount)
//
// hostPath volumes are not copied: their host path is returned as is, after the type check.
// A persistentVolumeClaim volume is resolved to the PersistentVolume bound to the claim (both
// read through the Getter); its hostPath or local directory is bind-mounted (read-only if the
// claim source says so) at the path above, which Teardown unmounts before removing the pod
// directory, so the volume's data outlives the pod. A claim that is missing or not bound yet
// yields an error wrapping ErrClaimNotBound: the pod waits and is retried. SweepLocalPaths
// removes the directories of deleted local-path volumes that this kubelet mounted (recorded
// under <kubelet root>/local-path-volumes). Other volume types (ephemeral, image, csi, ...)
// are refused.
//
// # Contracts
//
// Setup is called on every sync of a pod and is idempotent. emptyDir and hostPath volumes are
// created once and never touched again (a memory emptyDir is mounted once: a directory that
// is already a mount point is left alone). configMap, secret, downwardAPI and projected
// volumes are rewritten atomically, the way Kubernetes' AtomicWriter does it: the files go to a
// fresh hidden directory "..<timestamp>.<random>", the "..data" symlink is swapped to it with
// one rename, and the names the container sees are symlinks "<first path component>" ->
// "..data/<first path component>". A reader therefore sees either the old or the new set of
// files, never a mix. When the wanted files (content, mode, owner) equal what "..data" holds
// nothing is written, so frequent syncs cost a few reads. Like the real kubelet, secret,
// downwardAPI and projected volumes live on a tmpfs so their contents never reach the disk.
//
// Setup and Teardown of one pod must not run concurrently; different pods may be handled in
// parallel. The only state the Manager keeps between calls is a cache of service-account
// tokens (see tokens.go); after a kubelet restart tokens are simply requested again.
//
// The Getter reports a missing object with an error for which apierrors.IsNotFound is true
// (as client-go does). A missing non-optional configMap or secret, or a missing key listed in
// items, yields an error wrapping ErrMissingSource; with optional: true the object or key is
// left out instead and the volume may be empty. Any other Getter error is returned wrapped
// as is, so the caller can retry it.
//
// Projected serviceAccountToken sources hold a token from the TokenRequest API bound to the
// pod, cached and replaced once 80% of its life has passed (tokens.go). clusterTrustBundle
// sources fail the volume.
//
// If pod.Spec.SecurityContext.FSGroup is set, emptyDir directories and the files of the
// atomically written volumes get that group, with group read (and, for emptyDir, write and
// setgid) permission added, as in Kubernetes. The alpha fields emptyDir "mode" and the
// per-file "user"/"defaultUser" are honoured.
//
// Mounts resolves subPaths through symlinks and refuses any that lead outside the volume; the
// resolved path is what the runtime bind-mounts. Mounts of configMap, secret, downwardAPI and
// projected volumes are always read-only. subPathExpr is not supported.
package volume
