// Command nanokube-shim is the container shim and pod init of nanokube's runtime, built on
// its own so that each container does not pay for re-executing the whole nanokube binary
// (its package initialisation and its pages). The Makefile builds it into
// internal/runtime/shimbin/payload, the nanokube binary embeds it, and the runtime writes
// it under its root and runs it. See package shim.
package main

import (
	"fmt"
	"os"

	"github.com/nanokube/nanokube/internal/runtime/shim"
)

func main() {
	if code, ran := shim.Main(); ran {
		os.Exit(code)
	}
	fmt.Fprintf(os.Stderr, "nanokube-shim is started by the nanokube runtime only (it needs %s or %s)\n", shim.ShimEnv, shim.PodInitEnv)
	os.Exit(2)
}
