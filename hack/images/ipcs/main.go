// Command ipcs stands in for util-linux's and busybox's `ipcs -m` in critest's busybox image
// (Debian's busybox-static has no ipcs applet): it lists the System V shared memory segments
// of the caller's IPC namespace, from /proc/sysvipc/shm as the real tools do, in their
// layout. Only -m (the default here) is served; critest's HostIpc specs look for a shmid.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	for _, a := range os.Args[1:] {
		if a != "-m" {
			fmt.Fprintf(os.Stderr, "ipcs: only -m (shared memory) is supported, not %q\n", a)
			os.Exit(2)
		}
	}
	f, err := os.Open("/proc/sysvipc/shm")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcs:", err)
		os.Exit(1)
	}
	defer f.Close()
	fmt.Printf("\n------ Shared Memory Segments --------\n%-10s %-10s %-10s %-10s %-10s %-10s\n", "key", "shmid", "owner", "perms", "bytes", "nattch")
	sc := bufio.NewScanner(f)
	sc.Scan() // header: key shmid perms size cpid lpid nattch uid ...
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 8 {
			continue
		}
		key, _ := strconv.ParseInt(fl[0], 10, 64)
		// perms are octal in the file already; the owner stays a uid (no passwd lookup).
		fmt.Printf("0x%08x %-10s %-10s %-10s %-10s %-10s\n", uint32(key), fl[1], fl[7], fl[2], fl[3], fl[6])
	}
}
