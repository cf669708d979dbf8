// Package container owns what runs a container, on the runtime's side: the OCI spec built
// from a CRI config, the runc command line, and starting, recognising, waiting for and
// signalling the per-container shims and pod inits.
//
// The spec follows containerd's choices where the CRI leaves room: a privileged container
// gets the capabilities the runtime itself holds; seccomp profiles (runtime default,
// localhost files in Docker's JSON format) go into the spec for runc to apply, and never
// for a privileged container; a bidirectional or host-to-container mount needs a source
// that can propagate and sets the root's propagation to match.
//
// The shims and pod inits themselves, and the files and frames they share with the
// runtime, are package shim. The runtime runs them from a shim program: the dedicated
// nanokube-shim (see package shimbin) or, when none is embedded, any binary that links
// this package, whose init hands over to shim.Main when the environment asks for a shim.
// Shims outlive the runtime, so a restarted runtime finds running containers still running
// and exited ones with their exit code. The runtime talks to a shim only through files in
// the bundle and signals: SIGUSR1 reopens the log file.
package container
