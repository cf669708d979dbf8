// Package procstat reads a process's memory and CPU figures from /proc, for the benchmarks.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// RSS is the process's resident set size in bytes (0 if it is gone).
func RSS(pid int) int64 { return kiloBytes(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") }

// PSS is the process's proportional set size in bytes: each shared page divided among the
// processes that map it, so the PSS of several processes of one binary adds up honestly.
func PSS(pid int) int64 { return kiloBytes(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:") }

func kiloBytes(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// CPUTime is the user+system CPU time the process has used (0 if it is gone).
func CPUTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 <= len(s) {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
