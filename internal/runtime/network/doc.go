// Package network owns pod networking: the namespaces a sandbox holds without any process
// (bind-mounted namespace files), and CNI setup and teardown through libcni with the
// standard plugins (bridge, host-local, portmap, loopback).
//
// Namespaces live as files under a sandbox's directory: creating them needs root, and they
// must be removed with RemoveNamespaces (which unmounts before deleting) or they leak.
// CNI ADD is undone by CNI DEL with the same container id, namespace path and port mappings;
// Teardown is idempotent so a half-set-up sandbox can always be torn down.
package network
