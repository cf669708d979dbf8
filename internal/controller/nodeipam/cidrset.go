package nodeipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
)

// errExhausted reports that every range of the cluster CIDR is taken.
var errExhausted = errors.New("cluster CIDR exhausted")

// maxSubnets bounds the allocator's index space (an IPv6 cluster CIDR can hold more ranges
// than any cluster has nodes).
const maxSubnets = 1 << 24

// cidrSet hands out the subnets of one cluster CIDR by index. It is not safe for concurrent use.
type cidrSet struct {
	cluster netip.Prefix
	mask    int
	count   int
	used    map[int]bool
	next    int // where the next search starts, so that freed ranges are not reused at once
}

func newCIDRSet(cluster netip.Prefix, mask int) (*cidrSet, error) {
	cluster = cluster.Masked()
	if !cluster.IsValid() {
		return nil, errors.New("invalid cluster CIDR")
	}
	if mask < cluster.Bits() || mask > cluster.Addr().BitLen() {
		return nil, fmt.Errorf("node CIDR mask size %d does not fit cluster CIDR %s", mask, cluster)
	}
	count := maxSubnets
	if d := mask - cluster.Bits(); d < 24 {
		count = 1 << d
	}
	return &cidrSet{cluster: cluster, mask: mask, count: count, used: map[int]bool{}}, nil
}

// subnet returns the i-th range.
func (s *cidrSet) subnet(i int) netip.Prefix {
	base := new(big.Int).SetBytes(s.cluster.Addr().AsSlice())
	off := new(big.Int).Lsh(big.NewInt(int64(i)), uint(s.cluster.Addr().BitLen()-s.mask))
	b := base.Add(base, off).Bytes()
	buf := make([]byte, s.cluster.Addr().BitLen()/8)
	copy(buf[len(buf)-len(b):], b)
	addr, _ := netip.AddrFromSlice(buf)
	return netip.PrefixFrom(addr, s.mask)
}

// index returns the index of a range, false when it is not one of the set's ranges.
func (s *cidrSet) index(p netip.Prefix) (int, bool) {
	if p.Bits() != s.mask || p.Addr().Is4() != s.cluster.Addr().Is4() || !s.cluster.Contains(p.Addr()) {
		return 0, false
	}
	p = p.Masked()
	addr := new(big.Int).SetBytes(p.Addr().AsSlice())
	base := new(big.Int).SetBytes(s.cluster.Addr().AsSlice())
	i := new(big.Int).Rsh(addr.Sub(addr, base), uint(s.cluster.Addr().BitLen()-s.mask))
	if !i.IsInt64() || i.Int64() >= int64(s.count) {
		return 0, false
	}
	return int(i.Int64()), true
}

// occupy marks a range used; false when it is not one of the set's ranges.
func (s *cidrSet) occupy(p netip.Prefix) bool {
	i, ok := s.index(p)
	if ok {
		s.used[i] = true
	}
	return ok
}

func (s *cidrSet) release(p netip.Prefix) {
	if i, ok := s.index(p); ok {
		delete(s.used, i)
	}
}

// allocate takes the next free range.
func (s *cidrSet) allocate() (netip.Prefix, error) {
	for n := 0; n < s.count; n++ {
		i := (s.next + n) % s.count
		if !s.used[i] {
			s.used[i] = true
			s.next = (i + 1) % s.count
			return s.subnet(i), nil
		}
	}
	return netip.Prefix{}, errExhausted
}
