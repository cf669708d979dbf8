// Package localpath is nanokube's built-in dynamic provisioner of node-local volumes
// ("local-path-provisioner" in the controller manager), in the spirit of Rancher's
// local-path-provisioner that k3s ships: a claim of a StorageClass whose provisioner is
// nanokube.io/local-path gets a hostPath PersistentVolume on the node that runs its first pod.
//
// At start it creates the StorageClass local-path (default class, volumeBindingMode
// WaitForFirstConsumer, reclaimPolicy Delete) unless a class of that name exists; a class an
// administrator changed is left alone.
//
// Provisioning: the scheduler sets the annotation volume.kubernetes.io/selected-node on an
// unbound WaitForFirstConsumer claim when it binds the claim's first pod. The controller then
// creates the PersistentVolume pvc-<claim uid> (capacity and access modes from the claim,
// reclaim policy from the class, hostPath <BaseDir>/pvc-<claim uid> of type
// DirectoryOrCreate, required node affinity kubernetes.io/hostname In [node], claimRef to the
// claim) and binds both ways: claim spec.volumeName and status Bound with capacity and access
// modes, volume status Bound. Claims of an Immediate class of this provisioner cannot be
// placed (no node is known) and get a ProvisioningFailed event.
//
// Reclaiming: when the claim of a provisioned volume is gone (or replaced by another of the
// same name), a Delete volume is deleted and a Retain volume becomes Released. The data is not
// removed here: the controller manager need not run on the volume's node. Each kubelet instead
// sweeps its local-path directory and removes the directories of volumes that no longer exist
// (see internal/kubelet/volume, SweepLocalPaths); the directory is created by the kubelet on
// first mount.
//
// Not implemented: the kubernetes.io/pvc-protection finalizer (a claim in use can be deleted),
// capacity accounting per node, volume expansion.
package localpath
