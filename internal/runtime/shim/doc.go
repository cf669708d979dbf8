// Package shim is the per-container shim and the pod init: the programs the runtime starts
// for every container and for every pod that shares a pid namespace, and the contract
// between them and the runtime (bundle files, exit record, attach frames, signals).
//
// It imports only the standard library and golang.org/x/sys, so that the dedicated program
// built from cmd/nanokube-shim stays a few MB and starts in a millisecond or two; the
// runtime-side helpers (starting a shim, waiting for it, error classes) live in package
// container. TestDependencies guards the import set.
//
// A shim is started with ShimEnv=<bundle> in its environment and the write end of a status
// pipe as fd 3. It reads Config from the bundle, runs `runc create` with pipes (or a pty)
// for the container's stdio, writes "ok" (or the error) to the status pipe, then becomes the
// container's parent as a child subreaper: it copies output to the CRI log file, serves
// attach clients on AttachSocket and, when the container's init exits, writes ExitFile and
// exits itself. SIGUSR1 reopens the log file. A pod init is started with PodInitEnv=<sandbox
// dir> as pid 1 of a new pid namespace and only reaps orphans until SIGTERM or SIGKILL.
//
// The runtime recognises its shims and pod inits by those variables in
// /proc/<pid>/environ, so the environment variables, file names and formats here are an
// on-disk contract between runtime versions: a shim started by an older nanokube must be
// adopted by a newer one, whichever program (the nanokube binary re-executed or the
// dedicated shim) runs it. Change them only compatibly.
package shim
