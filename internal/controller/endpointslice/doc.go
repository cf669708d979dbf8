// Package endpointslice maintains the discovery.k8s.io/v1 EndpointSlices of every Service
// that has a selector, as Kubernetes' endpointslice controller does.
//
// sync(ctx, "namespace/name") turns the pods the selector matches (with an IP of the slice's
// address family and a non-terminal phase) into endpoints with conditions ready (ready pod, or
// publishNotReadyAddresses; never for a terminating pod unless publishNotReadyAddresses),
// serving (ready pod) and terminating, the pod's nodeName, zone (its node's
// topology.kubernetes.io/zone) and targetRef, and hostname when the pod's subdomain names the
// Service. Each Service port's targetPort is resolved per pod: a pod lacking a named port is
// left out of that port, so endpoints are grouped by their resolved port set, one group of
// slices each, at most MaxEndpointsPerSlice endpoints per slice.
//
// Reconciling keeps churn low: endpoints stay in the slice that holds them, new ones fill
// existing slices with room before new slices are created, emptied slices are deleted, and a
// slice is written only when its endpoints, ports, labels or owner differ. A Service with no
// endpoints keeps one empty placeholder slice. Slices carry the labels
// kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by (plus the Service's
// own labels and service.kubernetes.io/headless) and a controller ownerReference to the
// Service; only slices with our managed-by label are touched.
//
// Created slices have generated names, so a stale informer cache could make the controller
// create a second slice for the same endpoints: the controller remembers slices it created or
// deleted until the cache shows them, and requeues a Service whose slices the cache has not
// caught up with.
//
// Services without a selector and ExternalName Services are left alone, as is the
// "kubernetes" Service in "default".
package endpointslice
