// Command pgrep stands in for procps' and busybox's pgrep in critest's busybox image
// (Debian's busybox-static has no pgrep applet): `pgrep PATTERN` prints the pids of the
// processes whose name (/proc/PID/comm) matches the extended regular expression PATTERN,
// one a line, and exits 1 when none does — the form critest's exec specs use.
package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: pgrep PATTERN (options are not supported)")
		os.Exit(2)
	}
	re, err := regexp.Compile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgrep:", err)
		os.Exit(2)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgrep:", err)
		os.Exit(3)
	}
	self, found := os.Getpid(), false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue // exited meanwhile
		}
		if re.MatchString(strings.TrimSuffix(string(comm), "\n")) {
			fmt.Println(pid)
			found = true
		}
	}
	if !found {
		os.Exit(1)
	}
}
