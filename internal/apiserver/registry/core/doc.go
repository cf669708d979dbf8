// Package core describes the core/v1 resources (pods, nodes, namespaces, services, ...) and owns
// what the workload groups share with them: pod-template defaulting (DefaultPodTemplate) and
// validation (ValidatePodTemplate), and the container cells of the -o wide tables.
//
// Every strategy function receives typed k8s.io/api objects, mutates only what it is given and
// keeps no reference to it. Validation returns field.ErrorLists whose paths start at the object
// root ("spec.containers[0].image"), as kube-apiserver's do.
package core
