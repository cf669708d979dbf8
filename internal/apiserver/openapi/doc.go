// Package openapi builds and serves the API server's OpenAPI documents, as kube-apiserver
// does, from the real k8s.io/api types: /openapi/v2 (one Swagger 2.0 document, JSON or
// protobuf) and /openapi/v3 (an index, then one OpenAPI 3.0 document per group-version).
//
// What clients need from them:
//   - kubectl explain reads the v3 document of the kind's group-version (v2 with
//     --output=plaintext-openapiv2) and finds the kind's schema by its
//     x-kubernetes-group-version-kind extension; the descriptions are the types' Go comments.
//   - kubectl apply/create/replace with --validate=strict (the default) looks for the
//     fieldValidation query parameter on the kind's PATCH operation in the v3 document; when
//     it is there, kubectl sends fieldValidation=Strict and leaves validation to the server,
//     which can use UnknownFields. When it is not (v1 List documents, for one), kubectl
//     validates client-side against the v2 document, fetched as protobuf.
//
// The schemas come from zz_generated.openapi.go, which kube-openapi's openapi-gen writes from
// every GA group-version of k8s.io/api and the apimachinery types they use (regenerate with
// hack/update-openapi.sh after bumping k8s.io/api). Definitions are named as kube-apiserver
// names them ("io.k8s.api.core.v1.Pod"), each kind's carrying x-kubernetes-group-version-kind.
// The paths are those of the generic REST handlers for each registry.Resource (collection,
// item, all-namespaces list, subresources), with kube-apiserver's operation IDs,
// x-kubernetes-action and x-kubernetes-group-version-kind; kube-openapi's builder and
// builder3 turn them into documents and its handler and handler3 serve them (ETags, v3
// hashes, protobuf, gzip).
//
// Cost: New only checks the resources. The documents are built once, by Build or on first
// use (about 50 ms for a full control plane's resources); each document is serialized on its
// first request and the bytes cached. Everything a Spec returns is shared and must not be
// modified.
package openapi
