package proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// rule is one nftables rule in two forms built side by side: the nft syntax (what golden
// files, logs and diffs see) and its expressions in netlink wire format (the content of
// NFTA_RULE_EXPRESSIONS), which the netlink backend copies into its batch. Rules are only
// made by ruleBuilder, so the two forms cannot drift apart. Encoding here, rather than
// keeping github.com/google/nftables expression structs, costs two allocations per rule
// instead of a dozen: a full sync has over 100,000 rules.
type rule struct {
	text string
	wire []byte
}

// ruleBuilder appends matches and statements to a rule, each as text and expressions.
type ruleBuilder struct {
	parts []string
	w     wire
}

// builders recycles ruleBuilders: a full sync builds over 100,000 rules, and each builder's
// buffer would otherwise be garbage after one.
var builders = sync.Pool{New: func() any { return &ruleBuilder{w: wire{b: make([]byte, 0, 1024)}} }}

func newRule() *ruleBuilder { return builders.Get().(*ruleBuilder) }

func (b *ruleBuilder) text(t string) *ruleBuilder {
	b.parts = append(b.parts, t)
	return b
}

// build returns the rule; the builder must not be used afterwards.
func (b *ruleBuilder) build() rule {
	r := rule{text: strings.Join(b.parts, " "), wire: slices.Clone(b.w.b)}
	clear(b.parts)
	b.parts, b.w.b = b.parts[:0], b.w.b[:0]
	builders.Put(b)
	return r
}

// Registers: reg 1 holds single values; concatenations use the 32-bit registers from 8
// (NFT_REG32_00), as nft does. Register 0 is the verdict.
const (
	regVerdict = 0
	reg1       = 1
	reg2       = 2
	reg32base  = 8
)

var ipOffsets = map[string]uint32{"saddr": 12, "daddr": 16}

// Expressions, in netlink wire format.

func (w *wire) beginExpr(name string) (el, data int) {
	el = w.nest(unix.NFTA_LIST_ELEM)
	w.str(unix.NFTA_EXPR_NAME, name)
	return el, w.nest(unix.NFTA_EXPR_DATA)
}

func (w *wire) endExpr(el, data int) {
	w.close(data)
	w.close(el)
}

func (w *wire) payload(dreg, base, offset, length uint32) {
	el, d := w.beginExpr("payload")
	w.u32(unix.NFTA_PAYLOAD_DREG, dreg)
	w.u32(unix.NFTA_PAYLOAD_BASE, base)
	w.u32(unix.NFTA_PAYLOAD_OFFSET, offset)
	w.u32(unix.NFTA_PAYLOAD_LEN, length)
	w.endExpr(el, d)
}

func (w *wire) ipPayload(field string, dreg uint32) {
	w.payload(dreg, unix.NFT_PAYLOAD_NETWORK_HEADER, ipOffsets[field], 4)
}

func (w *wire) dportPayload(dreg uint32) {
	w.payload(dreg, unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2)
}

func (w *wire) value(typ uint16, data []byte) {
	at := w.nest(typ)
	w.bytes(unix.NFTA_DATA_VALUE, data)
	w.close(at)
}

func (w *wire) cmp(op uint32, data []byte) {
	el, d := w.beginExpr("cmp")
	w.u32(unix.NFTA_CMP_SREG, reg1)
	w.u32(unix.NFTA_CMP_OP, op)
	w.value(unix.NFTA_CMP_DATA, data)
	w.endExpr(el, d)
}

func (w *wire) bitwise(mask, xor []byte) {
	el, d := w.beginExpr("bitwise")
	w.u32(unix.NFTA_BITWISE_SREG, reg1)
	w.u32(unix.NFTA_BITWISE_DREG, reg1)
	w.u32(unix.NFTA_BITWISE_LEN, uint32(len(mask)))
	w.value(unix.NFTA_BITWISE_MASK, mask)
	w.value(unix.NFTA_BITWISE_XOR, xor)
	w.endExpr(el, d)
}

func (w *wire) metaLoad(key, dreg uint32) {
	el, d := w.beginExpr("meta")
	w.u32(unix.NFTA_META_DREG, dreg)
	w.u32(unix.NFTA_META_KEY, key)
	w.endExpr(el, d)
}

func (w *wire) metaSet(key, sreg uint32) {
	el, d := w.beginExpr("meta")
	w.u32(unix.NFTA_META_KEY, key)
	w.u32(unix.NFTA_META_SREG, sreg)
	w.endExpr(el, d)
}

func (w *wire) immediateData(dreg uint32, data []byte) {
	el, d := w.beginExpr("immediate")
	w.u32(unix.NFTA_IMMEDIATE_DREG, dreg)
	w.value(unix.NFTA_IMMEDIATE_DATA, data)
	w.endExpr(el, d)
}

// verdictData writes a verdict (NFTA_DATA_VERDICT) nested in an attribute of type typ.
func (w *wire) verdictData(typ uint16, v string) {
	outer := w.nest(typ)
	inner := w.nest(unix.NFTA_DATA_VERDICT)
	w.u32(unix.NFTA_VERDICT_CODE, uint32(verdictCode(v)))
	if chain := verdictChain(v); chain != "" {
		w.str(unix.NFTA_VERDICT_CHAIN, chain)
	}
	w.close(inner)
	w.close(outer)
}

func u32be(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u32ne(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
func u16be(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// ip matches "ip saddr|daddr [!=] value", value an address or a prefix.
func (b *ruleBuilder) ip(field string, negate bool, value string) *ruleBuilder {
	op, text := uint32(unix.NFT_CMP_EQ), "ip "+field+" "+value
	if negate {
		op, text = unix.NFT_CMP_NEQ, "ip "+field+" != "+value
	}
	b.w.ipPayload(field, reg1)
	if pfx, err := netip.ParsePrefix(value); err == nil {
		addr := pfx.Masked().Addr().As4()
		b.w.bitwise(u32be(^uint32(0)<<(32-pfx.Bits())), make([]byte, 4))
		b.w.cmp(op, addr[:])
	} else {
		a := netip.MustParseAddr(value).As4()
		b.w.cmp(op, a[:])
	}
	return b.text(text)
}

// l4proto matches "meta l4proto <proto>".
func (b *ruleBuilder) l4proto(proto string) *ruleBuilder {
	b.w.metaLoad(unix.NFT_META_L4PROTO, reg1)
	b.w.cmp(unix.NFT_CMP_EQ, []byte{protoNumber(proto)})
	return b.text("meta l4proto " + proto)
}

// dport matches "<proto> dport <port>".
func (b *ruleBuilder) dport(proto string, port int32) *ruleBuilder {
	b.w.metaLoad(unix.NFT_META_L4PROTO, reg1)
	b.w.cmp(unix.NFT_CMP_EQ, []byte{protoNumber(proto)})
	b.w.dportPayload(reg1)
	b.w.cmp(unix.NFT_CMP_EQ, u16be(uint16(port)))
	return b.text(proto + " dport " + strconv.Itoa(int(port)))
}

// fibLocal matches "fib saddr|daddr type local".
func (b *ruleBuilder) fibLocal(field string) *ruleBuilder {
	flags := uint32(unix.NFTA_FIB_F_SADDR)
	if field == "daddr" {
		flags = unix.NFTA_FIB_F_DADDR
	}
	el, d := b.w.beginExpr("fib")
	b.w.u32(unix.NFTA_FIB_DREG, reg1)
	b.w.u32(unix.NFTA_FIB_RESULT, unix.NFT_FIB_RESULT_ADDRTYPE)
	b.w.u32(unix.NFTA_FIB_FLAGS, flags)
	b.w.endExpr(el, d)
	b.w.cmp(unix.NFT_CMP_EQ, u32ne(unix.RTN_LOCAL))
	return b.text("fib " + field + " type local")
}

// ctStateNew matches "ct state new".
func (b *ruleBuilder) ctStateNew() *ruleBuilder {
	b.ctBits(unix.NFT_CT_STATE, 1<<3 /* NF_CT_STATE_BIT(IP_CT_NEW) */)
	return b.text("ct state new")
}

// ctStatusDNAT matches "ct status dnat".
func (b *ruleBuilder) ctStatusDNAT() *ruleBuilder {
	b.ctBits(unix.NFT_CT_STATUS, 1<<5 /* IPS_DST_NAT */)
	return b.text("ct status dnat")
}

func (b *ruleBuilder) ctBits(key, bits uint32) {
	el, d := b.w.beginExpr("ct")
	b.w.u32(unix.NFTA_CT_DREG, reg1)
	b.w.u32(unix.NFTA_CT_KEY, key)
	b.w.endExpr(el, d)
	b.w.bitwise(u32ne(bits), make([]byte, 4))
	b.w.cmp(unix.NFT_CMP_NEQ, make([]byte, 4))
}

// numgen matches "numgen random mod <n> == 0".
func (b *ruleBuilder) numgen(n int) *ruleBuilder {
	el, d := b.w.beginExpr("numgen")
	b.w.u32(unix.NFTA_NG_DREG, reg1)
	b.w.u32(unix.NFTA_NG_MODULUS, uint32(n))
	b.w.u32(unix.NFTA_NG_TYPE, unix.NFT_NG_RANDOM)
	b.w.u32(unix.NFTA_NG_OFFSET, 0)
	b.w.endExpr(el, d)
	b.w.cmp(unix.NFT_CMP_EQ, make([]byte, 4))
	return b.text("numgen random mod " + strconv.Itoa(n) + " == 0")
}

// Selectors usable as (parts of) a set key.
type selector struct {
	text string
	load func(w *wire, dreg uint32)
}

var (
	selSaddr   = selector{"ip saddr", func(w *wire, r uint32) { w.ipPayload("saddr", r) }}
	selDaddr   = selector{"ip daddr", func(w *wire, r uint32) { w.ipPayload("daddr", r) }}
	selL4proto = selector{"meta l4proto", func(w *wire, r uint32) { w.metaLoad(unix.NFT_META_L4PROTO, r) }}
	selDport   = selector{"th dport", func(w *wire, r uint32) { w.dportPayload(r) }}
)

func (b *ruleBuilder) loadKey(sels []selector) (string, uint32) {
	if len(sels) == 1 {
		sels[0].load(&b.w, reg1)
		return sels[0].text, reg1
	}
	names := make([]string, len(sels))
	for i, s := range sels {
		names[i] = s.text
		s.load(&b.w, reg32base+uint32(i))
	}
	return strings.Join(names, " . "), reg32base
}

func (b *ruleBuilder) lookup(set string, sreg uint32, vmap bool) {
	el, d := b.w.beginExpr("lookup")
	b.w.str(unix.NFTA_LOOKUP_SET, set)
	b.w.u32(unix.NFTA_LOOKUP_SREG, sreg)
	if vmap {
		b.w.u32(unix.NFTA_LOOKUP_DREG, regVerdict)
	}
	b.w.endExpr(el, d)
}

// inSet matches "<key> @set".
func (b *ruleBuilder) inSet(set string, sels ...selector) *ruleBuilder {
	key, reg := b.loadKey(sels)
	b.lookup(set, reg, false)
	return b.text(key + " @" + set)
}

// vmap ends the rule with "<key> vmap @map".
func (b *ruleBuilder) vmap(set string, sels ...selector) *ruleBuilder {
	key, reg := b.loadKey(sels)
	b.lookup(set, reg, true)
	return b.text(key + " vmap @" + set)
}

// verdict ends the rule with "jump|goto <chain>", "return", "drop" or "accept".
func (b *ruleBuilder) verdict(v string) *ruleBuilder {
	el, d := b.w.beginExpr("immediate")
	b.w.u32(unix.NFTA_IMMEDIATE_DREG, regVerdict)
	b.w.verdictData(unix.NFTA_IMMEDIATE_DATA, v)
	b.w.endExpr(el, d)
	return b.text(v)
}

// verdictCode is the kernel's code of a verdict written in nft syntax.
func verdictCode(v string) int32 {
	switch strings.Fields(v)[0] {
	case "jump":
		return unix.NFT_JUMP
	case "goto":
		return unix.NFT_GOTO
	case "return":
		return unix.NFT_RETURN
	case "drop":
		return 0 // NF_DROP
	default:
		return 1 // NF_ACCEPT
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
	b.w.immediateData(reg1, a[:])
	b.w.immediateData(reg2, u16be(uint16(port)))
	el, d := b.w.beginExpr("nat")
	b.w.u32(unix.NFTA_NAT_TYPE, unix.NFT_NAT_DNAT)
	b.w.u32(unix.NFTA_NAT_FAMILY, unix.NFPROTO_IPV4)
	b.w.u32(unix.NFTA_NAT_REG_ADDR_MIN, reg1)
	b.w.u32(unix.NFTA_NAT_REG_PROTO_MIN, reg2)
	b.w.u32(unix.NFTA_NAT_FLAGS, unix.NF_NAT_RANGE_PROTO_SPECIFIED)
	b.w.endExpr(el, d)
	return b.text("dnat to " + ip + ":" + strconv.Itoa(int(port)))
}

// updateSaddr adds the source address to a timeout set: "update @set { ip saddr timeout Ns }".
func (b *ruleBuilder) updateSaddr(set string, seconds int32) *ruleBuilder {
	b.w.ipPayload("saddr", reg1)
	el, d := b.w.beginExpr("dynset")
	b.w.str(unix.NFTA_DYNSET_SET_NAME, set)
	b.w.u32(unix.NFTA_DYNSET_OP, unix.NFT_DYNSET_OP_UPDATE)
	b.w.u32(unix.NFTA_DYNSET_SREG_KEY, reg1)
	b.w.bytes(unix.NFTA_DYNSET_TIMEOUT, binary.BigEndian.AppendUint64(nil, uint64(seconds)*1000))
	b.w.endExpr(el, d)
	return b.text("update @" + set + " { ip saddr timeout " + strconv.Itoa(int(seconds)) + "s }")
}

// markOr and markXor set "mark set mark or|xor <bits>".
func (b *ruleBuilder) markOr(bits uint32) *ruleBuilder {
	return b.markSet("or", bits, ^bits, bits)
}

func (b *ruleBuilder) markXor(bits uint32) *ruleBuilder {
	return b.markSet("xor", bits, ^uint32(0), bits)
}

func (b *ruleBuilder) markSet(op string, bits, mask, xor uint32) *ruleBuilder {
	b.w.metaLoad(unix.NFT_META_MARK, reg1)
	b.w.bitwise(u32ne(mask), u32ne(xor))
	b.w.metaSet(unix.NFT_META_MARK, reg1)
	return b.text("mark set mark " + op + " " + hexMark(bits))
}

// markClear matches "mark and <bits> == 0".
func (b *ruleBuilder) markClear(bits uint32) *ruleBuilder {
	b.w.metaLoad(unix.NFT_META_MARK, reg1)
	b.w.bitwise(u32ne(bits), make([]byte, 4))
	b.w.cmp(unix.NFT_CMP_EQ, make([]byte, 4))
	return b.text("mark and " + hexMark(bits) + " == 0")
}

func hexMark(bits uint32) string { return fmt.Sprintf("0x%08x", bits) }

// masquerade ends the rule with "masquerade fully-random".
func (b *ruleBuilder) masquerade() *ruleBuilder {
	el, d := b.w.beginExpr("masq")
	b.w.u32(unix.NFTA_MASQ_FLAGS, unix.NF_NAT_RANGE_PROTO_RANDOM_FULLY)
	b.w.endExpr(el, d)
	return b.text("masquerade fully-random")
}

// rejectTCPReset and rejectICMP end the rule with "reject with tcp reset" or "reject"
// (ICMP port unreachable).
func (b *ruleBuilder) rejectTCPReset() *ruleBuilder {
	b.reject(unix.NFT_REJECT_TCP_RST, 0)
	return b.text("reject with tcp reset")
}

func (b *ruleBuilder) rejectICMP() *ruleBuilder {
	b.reject(unix.NFT_REJECT_ICMP_UNREACH, 3 /* port unreachable */)
	return b.text("reject")
}

func (b *ruleBuilder) reject(typ uint32, code byte) {
	el, d := b.w.beginExpr("reject")
	b.w.u32(unix.NFTA_REJECT_TYPE, typ)
	b.w.bytes(unix.NFTA_REJECT_ICMP_CODE, []byte{code})
	b.w.endExpr(el, d)
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

// wire appends netlink attributes to a buffer.
type wire struct {
	b []byte
}

func (w *wire) bytes(typ uint16, data []byte) {
	w.b = binary.NativeEndian.AppendUint16(w.b, uint16(4+len(data)))
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = append(w.b, data...)
	w.pad()
}

func (w *wire) u32(typ uint16, v uint32) {
	w.b = binary.NativeEndian.AppendUint16(w.b, 8)
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = binary.BigEndian.AppendUint32(w.b, v)
}

func (w *wire) str(typ uint16, s string) {
	w.b = binary.NativeEndian.AppendUint16(w.b, uint16(4+len(s)+1))
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
	w.pad()
}

func (w *wire) pad() {
	for len(w.b)%4 != 0 {
		w.b = append(w.b, 0)
	}
}

// nest opens a nested attribute; close sets its length.
func (w *wire) nest(typ uint16) int {
	at := len(w.b)
	w.b = binary.NativeEndian.AppendUint16(w.b, 0)
	w.b = binary.NativeEndian.AppendUint16(w.b, typ|unix.NLA_F_NESTED)
	return at
}

func (w *wire) close(at int) {
	binary.NativeEndian.PutUint16(w.b[at:], uint16(len(w.b)-at))
}
