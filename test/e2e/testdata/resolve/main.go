// Command resolve looks names up the way a Go program in a pod does: through
// /etc/resolv.conf, with its search path and ndots (Go's own resolver, as the binary is
// static). It prints one line per name, "name addr..." sorted, and exits 1 if any failed.
//
// The e2e tests build it and run it in a busybox pod: busybox's nslookup does not walk the
// search path for names with a dot, such as kubernetes.default.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	failed := false
	for _, name := range os.Args[1:] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			failed = true
			continue
		}
		slices.Sort(addrs)
		fmt.Printf("%s %s\n", name, strings.Join(addrs, " "))
	}
	if failed {
		os.Exit(1)
	}
}
