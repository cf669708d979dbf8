// Package daemonset is the DaemonSet controller (kube-controller-manager's
// "daemonset-controller"): it keeps one pod of each DaemonSet on every node the DaemonSet fits,
// rolls template changes out, records the DaemonSet's history and reports its status.
//
// A node fits when the template's nodeName (if any), nodeSelector and required node affinity
// match it and its NoSchedule and NoExecute taints are tolerated; a pod already on a node whose
// new NoSchedule taint it does not tolerate may stay, one on a node with an untolerated
// NoExecute taint or that no longer matches goes. Every daemon pod gets Kubernetes' default
// DaemonSet tolerations (not-ready and unreachable NoExecute; disk-, memory- and pid-pressure
// and unschedulable NoSchedule; network-unavailable NoSchedule for hostNetwork pods). Pods are
// placed by the scheduler, as in Kubernetes since 1.12: the controller does not set nodeName
// but replaces the required node affinity with `metadata.name In [node]`. Failed pods are
// deleted and recreated after a per-node backoff (1s doubling to 15m) with a FailedDaemonPod
// event; succeeded pods are deleted too.
//
// History lives in apps/v1 ControllerRevisions named <daemonset>-<template hash>, owned by the
// DaemonSet, labelled with its template labels and controller-revision-hash, and holding the
// strategic merge patch {"spec":{"template":{...,"$patch":"replace"}}} that kubectl rollout
// history and undo read; a template that comes back reuses its revision under a new number and
// spec.revisionHistoryLimit old revisions that no pod runs are kept. Pods carry the
// controller-revision-hash label, and pod-template-generation when the DaemonSet has a
// deprecated.daemonset.template.generation annotation. The RollingUpdate strategy honours
// maxUnavailable (default 1) and maxSurge; OnDelete only replaces pods someone deleted.
//
// Status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
// numberAvailable (ready for minReadySeconds), numberUnavailable, updatedNumberScheduled,
// observedGeneration and, on a template hash collision, collisionCount. Events:
// SuccessfulCreate, SuccessfulDelete, FailedCreate, FailedDelete, FailedDaemonPod,
// SucceededDaemonPod, SelectingAll.
//
// Creations and deletions are counted in expectations so that a sync never acts on a stale
// informer cache. The package does not import the controller manager; New takes the clients
// and informers and registers its handlers (and a pod index), and Run(ctx, workers) blocks
// until ctx is done.
package daemonset
