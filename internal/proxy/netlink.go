package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// netlinkBackend programs the table over netlink, one nfnetlink batch per transaction.
//
// The batch is written in process (see encode) and sent as one datagram. No message asks
// for an ack (google/nftables asks for one per message, and an echo per rule, which for a
// full sync of 200,000 messages costs as many reads and can overrun the socket buffer): the
// kernel processes a batch within the sendmsg call and queues an error only for a message
// that fails, so a GETGEN request sent afterwards is a barrier, and every reply before its
// answer is an error of the batch, numbered like the operation it rejects. A batch sent
// without its end message is validated and then aborted, which is how `nft --check` works:
// that is Check.
type netlinkBackend struct {
	table  string
	netns  string // path of the network namespace; "" for the process's own
	family nftables.TableFamily
}

func newNetlinkBackend(table, netns string) *netlinkBackend {
	return &netlinkBackend{table: table, netns: netns, family: nftables.TableFamilyIPv4}
}

func (b *netlinkBackend) Run(ctx context.Context, tx *transaction) error {
	return b.send(tx, true)
}

// Prepare encodes tx now; an error is left for Run to find again and report.
func (b *netlinkBackend) Prepare(tx *transaction) {
	tx.batch, _ = b.encode(tx, firstSeq, true)
}

func (b *netlinkBackend) Check(ctx context.Context, tx *transaction) error {
	return b.send(tx, false)
}

// nsFd opens the configured network namespace; the caller closes it (-1: none).
func (b *netlinkBackend) nsFd() (int, error) {
	if b.netns == "" {
		return -1, nil
	}
	fd, err := unix.Open(b.netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening network namespace %s: %w", b.netns, err)
	}
	return fd, nil
}

// netlinkTables opens netlink backends on the tables of one network namespace.
type netlinkTables struct {
	netns string // path of the network namespace; "" for the process's own
}

func (t netlinkTables) table(name string) backend { return newNetlinkBackend(name, t.netns) }

// list dumps the chains of the family once (the kernel cannot filter a chain dump by table)
// and the sets of each wanted table that has chains.
func (t netlinkTables) list(ctx context.Context, want func(string) bool) (map[string]tableObjects, error) {
	b := newNetlinkBackend("", t.netns)
	fd, err := b.nsFd()
	if err != nil {
		return nil, err
	}
	var opts []nftables.ConnOption
	if fd >= 0 {
		defer unix.Close(fd)
		opts = append(opts, nftables.WithNetNSFd(fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, err
	}
	all, err := c.ListChainsOfTableFamily(b.family)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	out := map[string]tableObjects{}
	for _, ch := range all {
		if ch.Table != nil && want(ch.Table.Name) {
			o := out[ch.Table.Name]
			o.chains = append(o.chains, ch.Name)
			out[ch.Table.Name] = o
		}
	}
	for name, o := range out {
		ss, err := c.GetSets(&nftables.Table{Name: name, Family: b.family})
		if err != nil {
			return nil, fmt.Errorf("listing sets of table %s: %w", name, err)
		}
		for _, s := range ss {
			o.sets = append(o.sets, s.Name)
		}
		out[name] = o
	}
	return out, nil
}

// encode turns tx into one nfnetlink batch in wire format, the message of operation i
// having sequence number seq+i (elements of one set added or deleted in a row share one
// message, numbered after the first of them). Without commit the batch lacks its end.
//
// The frequent operations (rules, regular chains, flushes, elements) are encoded here into
// one buffer; the rare ones (table, base chains, sets) through github.com/google/nftables.
// google/nftables' own path would build a Message per operation, ask for an ack of each
// and an echo of each rule: for a full sync of 200,000 operations that costs seconds.
func (b *netlinkBackend) encode(tx *transaction, seq uint32, commit bool) ([]byte, error) {
	// The buffer is sized up front: growing a buffer of tens of megabytes step by step
	// costs more than all the encoding.
	size := 4096
	for _, op := range tx.ops {
		switch {
		case op.rule != nil:
			size += 64 + len(op.rule.chain) + len(op.rule.rule.wire)
		case op.element != nil:
			size += 48 + len(op.element.value)
		default:
			size += 128
		}
	}
	w := &batchWriter{wire: wire{b: make([]byte, 0, size)}, family: byte(b.family), table: b.table}
	w.begin(unix.NFNL_MSG_BATCH_BEGIN, seq-1, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	w.end()
	var rare *nftables.Conn
	var captured []netlink.Message
	t := &nftables.Table{Name: b.table, Family: b.family}
	for i := 0; i < len(tx.ops); i++ {
		op := tx.ops[i]
		n := seq + uint32(i)
		switch {
		case op.rule != nil:
			w.begin(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWRULE, n, w.family, 0, unix.NLM_F_CREATE|unix.NLM_F_APPEND)
			w.str(unix.NFTA_RULE_TABLE, w.table)
			w.str(unix.NFTA_RULE_CHAIN, op.rule.chain)
			list := w.nest(unix.NFTA_RULE_EXPRESSIONS)
			w.b = append(w.b, op.rule.rule.wire...)
			w.close(list)
			w.end()
		case op.chain != nil && op.chain.base == nil:
			switch op.verb {
			case verbAdd:
				w.begin(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWCHAIN, n, w.family, 0, unix.NLM_F_CREATE)
				w.str(unix.NFTA_CHAIN_TABLE, w.table)
				w.str(unix.NFTA_CHAIN_NAME, op.chain.name)
			case verbFlush:
				w.begin(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_DELRULE, n, w.family, 0)
				w.str(unix.NFTA_RULE_TABLE, w.table)
				w.str(unix.NFTA_RULE_CHAIN, op.chain.name)
			case verbDelete:
				w.begin(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_DELCHAIN, n, w.family, 0)
				w.str(unix.NFTA_CHAIN_TABLE, w.table)
				w.str(unix.NFTA_CHAIN_NAME, op.chain.name)
			}
			w.end()
		case op.element != nil:
			// One message for a run of operations on the same set, as long as the
			// element list fits the 16-bit length of its attribute.
			typ := unix.NFT_MSG_NEWSETELEM
			flags := uint16(unix.NLM_F_CREATE)
			if op.verb == verbDelete {
				typ, flags = unix.NFT_MSG_DELSETELEM, 0
			}
			w.begin(uint16(unix.NFNL_SUBSYS_NFTABLES<<8|typ), n, w.family, 0, flags)
			w.str(unix.NFTA_SET_ELEM_LIST_TABLE, w.table)
			w.str(unix.NFTA_SET_ELEM_LIST_SET, op.element.set)
			list := w.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
			for j := i; j < len(tx.ops); j++ {
				e := tx.ops[j]
				if j > i && (e.element == nil || e.verb != op.verb || e.element.set != op.element.set || len(w.b)-list > 60000) {
					break
				}
				if err := w.element(e.element); err != nil {
					return nil, fmt.Errorf("%s: %w", e, err)
				}
				i = j
			}
			w.close(list)
			w.end()
		default:
			if rare == nil {
				var err error
				rare, err = nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
					if req != nil && captured == nil {
						captured = req
					}
					return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 20)}}, nil
				}))
				if err != nil {
					return nil, err
				}
			}
			if err := encodeRare(rare, t, op); err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			captured = nil
			if err := rare.Flush(); err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			if len(captured) != 3 { // batch begin, the operation, batch end
				return nil, fmt.Errorf("%s: encoded as %d messages", op, len(captured))
			}
			m := captured[1]
			w.begin(uint16(m.Header.Type), n, m.Data[0], 0, uint16(m.Header.Flags&^(netlink.Request|netlink.Acknowledge|unix.NLM_F_ECHO)))
			w.b = append(w.b, m.Data[4:]...)
			w.end()
		}
	}
	if commit {
		w.begin(unix.NFNL_MSG_BATCH_END, seq+uint32(len(tx.ops)), unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
		w.end()
	}
	return w.b, nil
}

// encodeRare queues one table, base chain or set operation on c.
func encodeRare(c *nftables.Conn, t *nftables.Table, op txOp) error {
	switch {
	case op.chain != nil:
		bc := op.chain.base
		ch := &nftables.Chain{Table: t, Name: op.chain.name, Type: nftables.ChainType(bc.typ),
			Hooknum: nftables.ChainHookRef(nftHook(bc)), Priority: nftables.ChainPriorityRef(nftables.ChainPriority(bc.prio))}
		switch op.verb {
		case verbAdd:
			c.AddChain(ch)
		case verbFlush:
			c.FlushChain(ch)
		case verbDelete:
			c.DelChain(ch)
		}
	case op.set != nil:
		typ := op.set.typ
		s := &nftables.Set{Table: t, Name: op.set.name, IsMap: typ.verdicts, HasTimeout: typ.timeout, Dynamic: typ.timeout,
			Concatenation: len(typ.keys) > 1, KeyType: nftKeyType(typ)}
		if typ.verdicts {
			s.DataType = nftables.TypeVerdict
		}
		switch op.verb {
		case verbAdd:
			return c.AddSet(s, nil)
		case verbFlush:
			c.FlushSet(s)
		case verbDelete:
			c.DelSet(s)
		}
	default:
		if op.verb == verbDelete {
			c.DelTable(t)
		} else {
			c.AddTable(t)
		}
	}
	return nil
}

// batchWriter writes netlink messages into one buffer.
type batchWriter struct {
	wire
	msg    int // offset of the message being written
	family byte
	table  string
}

func (w *batchWriter) begin(typ uint16, seq uint32, family byte, resID uint16, flags ...uint16) {
	w.msg = len(w.b)
	f := uint16(unix.NLM_F_REQUEST)
	for _, x := range flags {
		f |= x
	}
	w.b = binary.NativeEndian.AppendUint32(w.b, 0) // length, set by end
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = binary.NativeEndian.AppendUint16(w.b, f)
	w.b = binary.NativeEndian.AppendUint32(w.b, seq)
	w.b = binary.NativeEndian.AppendUint32(w.b, 0) // port id: the kernel's
	w.b = append(w.b, family, unix.NFNETLINK_V0)
	w.b = binary.BigEndian.AppendUint16(w.b, resID)
}

func (w *batchWriter) end() {
	binary.NativeEndian.PutUint32(w.b[w.msg:], uint32(len(w.b)-w.msg))
}

func (w *batchWriter) element(e *elementSpec) error {
	key, err := encodeKey(e.typ, e.key)
	if err != nil {
		return err
	}
	el := w.nest(unix.NFTA_LIST_ELEM)
	k := w.nest(unix.NFTA_SET_ELEM_KEY)
	w.bytes(unix.NFTA_DATA_VALUE, key)
	w.close(k)
	if e.value != "" {
		w.verdictData(unix.NFTA_SET_ELEM_DATA, e.value)
	}
	w.close(el)
	return nil
}

func nftKeyType(t setType) nftables.SetDatatype {
	types := make([]nftables.SetDatatype, len(t.keys))
	for i, k := range t.keys {
		types[i] = [...]nftables.SetDatatype{nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService}[k]
	}
	if len(types) == 1 {
		return types[0]
	}
	return nftables.MustConcatSetType(types...)
}

// encodeKey encodes a set key; each part of a concatenation is padded to 4 bytes.
func encodeKey(t setType, parts []string) ([]byte, error) {
	if len(parts) != len(t.keys) {
		return nil, fmt.Errorf("key %q has %d parts, want %d", strings.Join(parts, " . "), len(parts), len(t.keys))
	}
	var out []byte
	for i, k := range t.keys {
		var b []byte
		switch k {
		case keyIPv4:
			a, err := netip.ParseAddr(parts[i])
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("bad IPv4 address %q", parts[i])
			}
			a4 := a.As4()
			b = a4[:]
		case keyProto:
			b = []byte{protoNumber(parts[i])}
		case keyPort:
			n, err := strconv.ParseUint(parts[i], 10, 16)
			if err != nil {
				return nil, fmt.Errorf("bad port %q", parts[i])
			}
			b = binaryutil.BigEndian.PutUint16(uint16(n))
		}
		out = append(out, b...)
		if len(t.keys) > 1 {
			for len(out)%4 != 0 {
				out = append(out, 0)
			}
		}
	}
	return out, nil
}

func nftHook(bc *baseChain) nftables.ChainHook {
	switch bc.hook {
	case "prerouting":
		return *nftables.ChainHookPrerouting
	case "input":
		return *nftables.ChainHookInput
	case "forward":
		return *nftables.ChainHookForward
	case "output":
		return *nftables.ChainHookOutput
	default:
		return *nftables.ChainHookPostrouting
	}
}

// firstSeq is the sequence number of a batch's first operation: the batch begin is 1, and the
// barrier comes after the batch end.
const firstSeq = 2

// batchError is the kernel's answer to one message of a batch.
type batchError struct {
	op  int // index in the transaction, -1 if unknown
	err error
}

// send sends tx as one batch; without commit the batch lacks its end and is only checked.
func (b *netlinkBackend) send(tx *transaction, commit bool) error {
	if len(tx.ops) == 0 {
		return nil
	}
	batch := tx.batch
	if !commit || batch == nil {
		var err error
		if batch, err = b.encode(tx, firstSeq, commit); err != nil {
			return fmt.Errorf("encoding nftables transaction: %w", err)
		}
	}
	barrier := uint32(firstSeq + len(tx.ops) + 1)
	fd, err := b.nsFd()
	if err != nil {
		return err
	}
	cfg := &netlink.Config{}
	if fd >= 0 {
		defer unix.Close(fd)
		cfg.NetNS = fd
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer conn.Close()

	// The barrier: the kernel answers it after every error of the batch.
	w := &batchWriter{wire: wire{b: batch}}
	w.begin(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETGEN, barrier, unix.AF_UNSPEC, 0)
	w.end()
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		// A batch is one datagram: the send buffer must hold it, and the receive buffer
		// the errors a rejected batch may bring back.
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, len(batch)+1<<16); serr != nil {
				serr = os.NewSyscallError("setsockopt", serr)
				return
			}
		}
		// The batch and the barrier go in two datagrams: nfnetlink takes a batch to
		// reach the end of its datagram.
		if serr = unix.Sendto(int(fd), batch, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); serr != nil {
			serr = fmt.Errorf("sending nftables batch of %d bytes: %w", len(batch), serr)
			return
		}
		if serr = unix.Sendto(int(fd), w.b[len(batch):], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); serr != nil {
			serr = os.NewSyscallError("sendto", serr)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	var errs []batchError
	for {
		replies, err := conn.Receive()
		if err != nil {
			var oe *netlink.OpError
			if errors.As(err, &oe) && oe.Sequence != barrier {
				op := -1
				if oe.Sequence >= firstSeq && oe.Sequence < barrier-1 {
					op = int(oe.Sequence - firstSeq)
				}
				errs = append(errs, batchError{op: op, err: oe.Err})
				continue
			}
			return fmt.Errorf("reading nftables batch result: %w", err)
		}
		if slices.ContainsFunc(replies, func(m netlink.Message) bool { return m.Header.Sequence == barrier }) {
			break
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return b.describe(tx, errs)
}

func (b *netlinkBackend) describe(tx *transaction, errs []batchError) error {
	parts := make([]string, 0, min(len(errs), 5))
	for _, e := range errs[:min(len(errs), 5)] {
		what := "batch"
		if e.op >= 0 && e.op < len(tx.ops) {
			what = tx.ops[e.op].String()
		}
		parts = append(parts, fmt.Sprintf("%s: %v", what, e.err))
	}
	if len(errs) > 5 {
		parts = append(parts, fmt.Sprintf("and %d more", len(errs)-5))
	}
	return fmt.Errorf("nftables rejected the transaction: %s", strings.Join(parts, "; "))
}

// String renders an operation in nft syntax, for errors.
func (op txOp) String() string {
	v := [...]string{"add", "flush", "delete"}[op.verb]
	switch {
	case op.chain != nil:
		return v + " chain " + op.chain.name
	case op.set != nil:
		return v + " set " + op.set.name
	case op.rule != nil:
		return v + " rule " + op.rule.chain + " " + op.rule.rule.text
	case op.element != nil:
		s := v + " element " + op.element.set + " { " + strings.Join(op.element.key, " . ")
		if op.element.value != "" {
			s += " : " + op.element.value
		}
		return s + " }"
	default:
		return v + " table"
	}
}
