package job

import (
	"slices"
	"strconv"
	"strings"
)

// indexSet is a set of completion indexes, written in status.completedIndexes the way
// Kubernetes writes it: sorted, with runs of consecutive indexes compressed ("0-2,4,7-9").
type indexSet map[int]struct{}

// parseIndexes reads a compressed index list, keeping the indexes below completions and
// ignoring malformed parts (the field is written only by this controller).
func parseIndexes(s string, completions int) indexSet {
	set := indexSet{}
	if s == "" {
		return set
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for ix := max(first, 0); ix <= last && ix < completions; ix++ {
			set[ix] = struct{}{}
		}
	}
	return set
}

func (s indexSet) has(ix int) bool { _, ok := s[ix]; return ok }

func (s indexSet) add(ix int) { s[ix] = struct{}{} }

// String is the compressed form: "" for the empty set.
func (s indexSet) String() string {
	ixs := make([]int, 0, len(s))
	for ix := range s {
		ixs = append(ixs, ix)
	}
	slices.Sort(ixs)
	var b strings.Builder
	for i := 0; i < len(ixs); {
		j := i
		for j+1 < len(ixs) && ixs[j+1] == ixs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ixs[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(ixs[j]))
		}
		i = j + 1
	}
	return b.String()
}
