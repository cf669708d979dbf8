package proxy

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// rule is one nftables rule in two forms built side by side: the nft syntax (what golden
// files, logs and diffs see) and the kernel expressions the netlink backend sends. Rules are
// only made by ruleBuilder, so the two forms cannot drift apart.
type rule struct {
	text  string
	exprs []expr.Any
}

// ruleBuilder appends matches and statements to a rule, each as text and expressions.
type ruleBuilder struct {
	parts []string
	exprs []expr.Any
}

func newRule() *ruleBuilder { return &ruleBuilder{} }

func (b *ruleBuilder) add(text string, exprs ...expr.Any) *ruleBuilder {
	b.parts = append(b.parts, text)
	b.exprs = append(b.exprs, exprs...)
	return b
}

func (b *ruleBuilder) build() rule { return rule{text: strings.Join(b.parts, " "), exprs: b.exprs} }

// Registers: reg 1 holds single values; concatenations use the 32-bit registers from 8
// (NFT_REG32_00), as nft does.
const (
	reg1      = 1
	reg2      = 2
	reg32base = 8
)

var ipOffsets = map[string]uint32{"saddr": 12, "daddr": 16}

func ipPayload(field string, dreg uint32) *expr.Payload {
	return &expr.Payload{DestRegister: dreg, Base: expr.PayloadBaseNetworkHeader, Offset: ipOffsets[field], Len: 4}
}

func dportPayload(dreg uint32) *expr.Payload {
	return &expr.Payload{DestRegister: dreg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func l4protoMeta(dreg uint32) *expr.Meta { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: dreg} }

// ip matches "ip saddr|daddr [!=] value", value an address or a prefix.
func (b *ruleBuilder) ip(field string, negate bool, value string) *ruleBuilder {
	op, text := expr.CmpOpEq, "ip "+field+" "+value
	if negate {
		op, text = expr.CmpOpNeq, "ip "+field+" != "+value
	}
	exprs := []expr.Any{ipPayload(field, reg1)}
	if pfx, err := netip.ParsePrefix(value); err == nil {
		mask := net4Mask(pfx.Bits())
		addr := pfx.Masked().Addr().As4()
		exprs = append(exprs,
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
			&expr.Cmp{Op: op, Register: reg1, Data: addr[:]})
	} else {
		a := netip.MustParseAddr(value).As4()
		exprs = append(exprs, &expr.Cmp{Op: op, Register: reg1, Data: a[:]})
	}
	return b.add(text, exprs...)
}

func net4Mask(bits int) []byte {
	m := make([]byte, 4)
	binary.BigEndian.PutUint32(m, ^uint32(0)<<(32-bits))
	if bits == 0 {
		clear(m)
	}
	return m
}

// l4proto matches "meta l4proto <proto>".
func (b *ruleBuilder) l4proto(proto string) *ruleBuilder {
	return b.add("meta l4proto "+proto, l4protoMeta(reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{protoNumber(proto)}})
}

// dport matches "<proto> dport <port>".
func (b *ruleBuilder) dport(proto string, port int32) *ruleBuilder {
	return b.add(proto+" dport "+strconv.Itoa(int(port)),
		l4protoMeta(reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{protoNumber(proto)}},
		dportPayload(reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(uint16(port))})
}

// fibLocal matches "fib saddr|daddr type local".
func (b *ruleBuilder) fibLocal(field string) *ruleBuilder {
	f := &expr.Fib{Register: reg1, ResultADDRTYPE: true, FlagSADDR: field == "saddr", FlagDADDR: field == "daddr"}
	return b.add("fib "+field+" type local", f, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
}

// ctStateNew matches "ct state new".
func (b *ruleBuilder) ctStateNew() *ruleBuilder {
	return b.add("ct state new", ctBits(expr.CtKeySTATE, 1<<3 /* NF_CT_STATE_BIT(IP_CT_NEW) */)...)
}

// ctStatusDNAT matches "ct status dnat".
func (b *ruleBuilder) ctStatusDNAT() *ruleBuilder {
	return b.add("ct status dnat", ctBits(expr.CtKeySTATUS, 1<<5 /* IPS_DST_NAT */)...)
}

func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: key},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

// numgen matches "numgen random mod <n> == 0".
func (b *ruleBuilder) numgen(n int) *ruleBuilder {
	return b.add("numgen random mod "+strconv.Itoa(n)+" == 0",
		&expr.Numgen{Register: reg1, Modulus: uint32(n), Type: unix.NFT_NG_RANDOM},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: make([]byte, 4)})
}

// Selectors usable as (parts of) a set key.
type selector struct {
	text string
	load func(dreg uint32) expr.Any
}

var (
	selSaddr   = selector{"ip saddr", func(r uint32) expr.Any { return ipPayload("saddr", r) }}
	selDaddr   = selector{"ip daddr", func(r uint32) expr.Any { return ipPayload("daddr", r) }}
	selL4proto = selector{"meta l4proto", func(r uint32) expr.Any { return l4protoMeta(r) }}
	selDport   = selector{"th dport", func(r uint32) expr.Any { return dportPayload(r) }}
)

func (b *ruleBuilder) loadKey(sels []selector) (string, uint32) {
	names := make([]string, len(sels))
	if len(sels) == 1 {
		b.exprs = append(b.exprs, sels[0].load(reg1))
		return sels[0].text, reg1
	}
	for i, s := range sels {
		names[i] = s.text
		b.exprs = append(b.exprs, s.load(reg32base+uint32(i)))
	}
	return strings.Join(names, " . "), reg32base
}

// inSet matches "<key> @set".
func (b *ruleBuilder) inSet(set string, sels ...selector) *ruleBuilder {
	key, reg := b.loadKey(sels)
	return b.add(key+" @"+set, &expr.Lookup{SourceRegister: reg, SetName: set})
}

// vmap ends the rule with "<key> vmap @map".
func (b *ruleBuilder) vmap(set string, sels ...selector) *ruleBuilder {
	key, reg := b.loadKey(sels)
	return b.add(key+" vmap @"+set, &expr.Lookup{SourceRegister: reg, SetName: set, IsDestRegSet: true, DestRegister: 0})
}

// verdict ends the rule with "jump|goto <chain>", "return", "drop" or "accept".
func (b *ruleBuilder) verdict(v string) *ruleBuilder {
	return b.add(v, &expr.Verdict{Kind: verdictKind(v), Chain: verdictChain(v)})
}

func verdictKind(v string) expr.VerdictKind {
	switch strings.Fields(v)[0] {
	case "jump":
		return expr.VerdictJump
	case "goto":
		return expr.VerdictGoto
	case "return":
		return expr.VerdictReturn
	case "drop":
		return expr.VerdictDrop
	default:
		return expr.VerdictAccept
	}
}

func verdictChain(v string) string {
	if _, chain, ok := strings.Cut(v, " "); ok {
		return chain
	}
	return ""
}

// dnat ends the rule with "meta l4proto <proto> dnat to ip:port".
func (b *ruleBuilder) dnat(proto, ip string, port int32) *ruleBuilder {
	b.l4proto(proto)
	a := netip.MustParseAddr(ip).As4()
	return b.add("dnat to "+ip+":"+strconv.Itoa(int(port)),
		&expr.Immediate{Register: reg1, Data: a[:]},
		&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg2, Specified: true})
}

// updateSaddr adds the source address to a timeout set: "update @set { ip saddr timeout Ns }".
func (b *ruleBuilder) updateSaddr(set string, seconds int32) *ruleBuilder {
	return b.add("update @"+set+" { ip saddr timeout "+strconv.Itoa(int(seconds))+"s }",
		ipPayload("saddr", reg1),
		&expr.Dynset{SrcRegKey: reg1, SetName: set, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: time.Duration(seconds) * time.Second})
}

// markOr and markXor set "mark set mark or|xor <bits>".
func (b *ruleBuilder) markOr(bits uint32) *ruleBuilder {
	return b.markSet("or", bits, ^bits, bits)
}

func (b *ruleBuilder) markXor(bits uint32) *ruleBuilder {
	return b.markSet("xor", bits, ^uint32(0), bits)
}

func (b *ruleBuilder) markSet(op string, bits, mask, xor uint32) *ruleBuilder {
	return b.add("mark set mark "+op+" "+hexMark(bits),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: binaryutil.NativeEndian.PutUint32(xor)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1})
}

// markClear matches "mark and <bits> == 0".
func (b *ruleBuilder) markClear(bits uint32) *ruleBuilder {
	return b.add("mark and "+hexMark(bits)+" == 0",
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: make([]byte, 4)})
}

func hexMark(bits uint32) string { return "0x" + leftPad(strconv.FormatUint(uint64(bits), 16), 8) }

func leftPad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
}

// masquerade ends the rule with "masquerade fully-random".
func (b *ruleBuilder) masquerade() *ruleBuilder {
	return b.add("masquerade fully-random", &expr.Masq{FullyRandom: true})
}

// rejectTCPReset and rejectICMP end the rule with "reject with tcp reset" or "reject"
// (ICMP port unreachable).
func (b *ruleBuilder) rejectTCPReset() *ruleBuilder {
	return b.add("reject with tcp reset", &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
}

func (b *ruleBuilder) rejectICMP() *ruleBuilder {
	return b.add("reject", &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3 /* port unreachable */})
}

func protoNumber(proto string) byte {
	switch proto {
	case "udp":
		return unix.IPPROTO_UDP
	case "sctp":
		return unix.IPPROTO_SCTP
	default:
		return unix.IPPROTO_TCP
	}
}
