package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nanokube/nanokube/bench/internal/procstat"
)

// The machine may be shared: other processes' CPU use is measured (all busy CPU time in
// /proc/stat minus this program's and its servers') and reported with each figure, and each
// figure waits, for a while, for the machine to be quiet before it starts.

var (
	liveMu   sync.Mutex
	livePIDs = map[int]bool{}
)

func trackPID(pid int, live bool) {
	liveMu.Lock()
	defer liveMu.Unlock()
	if live {
		livePIDs[pid] = true
	} else {
		delete(livePIDs, pid)
	}
}

// ownCPU is the CPU time of this program, its exited servers and its live servers.
func ownCPU() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	t := time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano())
	liveMu.Lock()
	defer liveMu.Unlock()
	for pid := range livePIDs {
		t += procstat.CPUTime(pid)
	}
	return t
}

// systemBusy is the busy CPU time of the whole machine (all but idle and iowait).
func systemBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already in user
			continue
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100
}

// loadSample marks a moment to measure other processes' CPU use from.
type loadSample struct {
	at        time.Time
	busy, own time.Duration
}

func sampleLoad() loadSample { return loadSample{time.Now(), systemBusy(), ownCPU()} }

// othersSince is the number of cores other processes used on average since s.
func (s loadSample) othersSince() float64 {
	n := sampleLoad()
	el := n.at.Sub(s.at).Seconds()
	if el <= 0 {
		return 0
	}
	return max(0, ((n.busy-s.busy)-(n.own-s.own)).Seconds()/el)
}

// waitQuiet waits until other processes use less than a quarter of a core over a second,
// for at most limit, and returns their load over the last second.
func waitQuiet(limit time.Duration) float64 {
	deadline := time.Now().Add(limit)
	for {
		s := sampleLoad()
		time.Sleep(time.Second)
		l := s.othersSince()
		if l < 0.25 || time.Now().After(deadline) {
			return l
		}
	}
}
