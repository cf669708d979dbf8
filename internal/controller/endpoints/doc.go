// Package endpoints maintains the core/v1 Endpoints object of every Service that has a
// selector, as Kubernetes' endpoints controller does.
//
// sync(ctx, "namespace/name") lists the pods the selector matches and writes one address per
// pod with an IP and a non-terminal phase: ready pods (or all, with publishNotReadyAddresses)
// under addresses, the others under notReadyAddresses; terminating pods are left out unless
// publishNotReadyAddresses is set. Each Service port's targetPort is resolved per pod (a named
// port the pod lacks leaves that pod out of that port), and addresses are grouped into subsets
// by their port sets, sorted, so that an unchanged world writes nothing. Endpoints carry the
// Service's labels (plus service.kubernetes.io/headless for headless Services) and are capped at
// 1000 addresses with the endpoints.kubernetes.io/over-capacity=truncated annotation.
//
// Services without a selector and ExternalName Services are left alone (their Endpoints are
// the user's), and so is the "kubernetes" Service in "default", whose Endpoints the API
// server maintains. When a Service is deleted its Endpoints are deleted.
package endpoints
