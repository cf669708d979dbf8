// Package container owns what runs a container: the OCI spec built from a CRI config, the
// runc command line, the per-container shim, and the CRI log format.
//
// The shim is this same binary re-executed with the ShimEnv variable set (see init in
// shim.go): it runs `runc create` with pipes for the container's stdio, becomes the
// container's parent as a child subreaper, copies output to the CRI log file, and on exit
// writes exit.json in the bundle directory before it exits itself. It outlives the runtime,
// so a restarted runtime finds running containers still running and exited ones with their
// exit code. The runtime talks to it only through files in the bundle and signals:
// SIGUSR1 reopens the log file.
package container
