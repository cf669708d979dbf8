package proxy

import (
	"context"
	"strings"

	"sigs.k8s.io/knftables"
)

// tables gives access to the proxy's nftables tables (family ip).
type tables interface {
	// table returns the backend that writes the named table.
	table(name string) backend
	// list returns the chains and sets of the tables whose names want accepts, in one pass
	// over the family. A missing table, or one without chains, may be left out.
	list(ctx context.Context, want func(table string) bool) (map[string]tableObjects, error)
}

// tableObjects names the chains and sets of one table.
type tableObjects struct {
	chains, sets []string
}

// backend applies transactions to one table.
type backend interface {
	// Run applies tx atomically: all of it or, with an error, none of it.
	Run(ctx context.Context, tx *transaction) error
	// Check reports whether the kernel would accept tx, changing nothing.
	Check(ctx context.Context, tx *transaction) error
	// Prepare does ahead of Run the work of running tx that needs no kernel (encoding), so
	// that it can overlap the kernel's work on another transaction. Errors surface in Run.
	Prepare(tx *transaction)
}

// transaction is a list of operations on one of the proxy's tables, in the order they apply.
type transaction struct {
	ops []txOp
	// batch is the netlink batch of ops (commit included) once a netlinkBackend prepared it.
	batch []byte
}

type verb uint8

const (
	verbAdd verb = iota
	verbFlush
	verbDelete
)

// txOp is one operation: exactly one of its object fields is set, or none for the table.
type txOp struct {
	verb    verb
	chain   *chainSpec
	set     *setSpec
	rule    *ruleSpec
	element *elementSpec
}

type chainSpec struct {
	name string
	base *baseChain // nil for a regular chain
}

type setSpec struct {
	name string
	typ  setType
}

type ruleSpec struct {
	chain string
	rule  rule
}

// elementSpec is one element of a set or map; value is the verdict of a map element ("" in
// a set, and in deletes).
type elementSpec struct {
	set   string
	typ   setType
	key   []string
	value string
}

func (tx *transaction) add(op txOp) { tx.ops = append(tx.ops, op) }

func (tx *transaction) addTable()    { tx.add(txOp{verb: verbAdd}) }
func (tx *transaction) deleteTable() { tx.add(txOp{verb: verbDelete}) }
func (tx *transaction) addChain(name string) {
	tx.add(txOp{verb: verbAdd, chain: &chainSpec{name: name}})
}
func (tx *transaction) flushChain(name string) {
	tx.add(txOp{verb: verbFlush, chain: &chainSpec{name: name}})
}
func (tx *transaction) deleteChain(name string) {
	tx.add(txOp{verb: verbDelete, chain: &chainSpec{name: name}})
}
func (tx *transaction) addRule(chain string, r rule) {
	tx.add(txOp{verb: verbAdd, rule: &ruleSpec{chain: chain, rule: r}})
}

// numOperations is the number of operations, for logs.
func (tx *transaction) numOperations() int { return len(tx.ops) }

// keyType is one part of a set key.
type keyType uint8

const (
	keyIPv4 keyType = iota
	keyProto
	keyPort
)

// setType is the type of a set or map: its key parts, whether it maps to verdicts, and
// whether it holds addresses added from the packet path with a timeout (affinity).
type setType struct {
	keys     []keyType
	verdicts bool
	timeout  bool
}

var (
	ipProtoPortMap = setType{keys: []keyType{keyIPv4, keyProto, keyPort}, verdicts: true}
	protoPortMap   = setType{keys: []keyType{keyProto, keyPort}, verdicts: true}
	ipv4Set        = setType{keys: []keyType{keyIPv4}}
	ipPairSet      = setType{keys: []keyType{keyIPv4, keyIPv4}}
	affinitySetTyp = setType{keys: []keyType{keyIPv4}, timeout: true}
)

func (t setType) keyText() string {
	names := make([]string, len(t.keys))
	for i, k := range t.keys {
		names[i] = [...]string{"ipv4_addr", "inet_proto", "inet_service"}[k]
	}
	return strings.Join(names, " . ")
}

// knftBackend runs transactions through sigs.k8s.io/knftables, as `nft -f` text. It is
// slow on big tables (nft parses every command and loads the whole ruleset first), but it
// lets tests run the proxy over knftables' in-memory table and read transactions as text.
type knftBackend struct {
	nft knftables.Interface
}

func (b knftBackend) Run(ctx context.Context, tx *transaction) error {
	return b.nft.Run(ctx, b.translate(tx))
}

func (knftBackend) Prepare(*transaction) {}

func (b knftBackend) Check(ctx context.Context, tx *transaction) error {
	return b.nft.Check(ctx, b.translate(tx))
}

// knftTables is a set of knftables interfaces, one per table, made by open on first use.
type knftTables struct {
	open   func(table string) knftables.Interface
	opened map[string]knftables.Interface
}

func (t *knftTables) table(name string) backend {
	if t.opened == nil {
		t.opened = map[string]knftables.Interface{}
	}
	nft, ok := t.opened[name]
	if !ok {
		nft = t.open(name)
		t.opened[name] = nft
	}
	return knftBackend{nft: nft}
}

func (t *knftTables) list(ctx context.Context, want func(string) bool) (map[string]tableObjects, error) {
	out := map[string]tableObjects{}
	for name, nft := range t.opened {
		if !want(name) {
			continue
		}
		chains, err := nft.List(ctx, "chains")
		if err != nil && !knftables.IsNotFound(err) {
			return nil, err
		}
		sets, err := nft.List(ctx, "sets")
		if err != nil && !knftables.IsNotFound(err) {
			return nil, err
		}
		if len(chains) > 0 || len(sets) > 0 {
			out[name] = tableObjects{chains: chains, sets: sets}
		}
	}
	return out, nil
}

func (b knftBackend) translate(tx *transaction) *knftables.Transaction {
	out := b.nft.NewTransaction()
	for _, op := range tx.ops {
		var obj knftables.Object
		switch {
		case op.chain != nil:
			c := &knftables.Chain{Name: op.chain.name}
			if bc := op.chain.base; bc != nil {
				c.Type, c.Hook, c.Priority = knftables.PtrTo(bc.typ), knftables.PtrTo(bc.hook), knftables.PtrTo(bc.priority)
			}
			obj = c
		case op.set != nil:
			obj = knftSet(op.set.name, op.set.typ)
		case op.rule != nil:
			obj = &knftables.Rule{Chain: op.rule.chain, Rule: op.rule.rule.text}
		case op.element != nil:
			e := &knftables.Element{Key: op.element.key}
			if op.element.typ.verdicts {
				e.Map = op.element.set
				if op.element.value != "" {
					e.Value = []string{op.element.value}
				}
			} else {
				e.Set = op.element.set
			}
			obj = e
		default:
			obj = &knftables.Table{Comment: knftables.PtrTo("nanokube service proxy")}
		}
		switch op.verb {
		case verbAdd:
			out.Add(obj)
		case verbFlush:
			out.Flush(obj)
		case verbDelete:
			out.Delete(obj)
		}
	}
	return out
}

func knftSet(name string, t setType) knftables.Object {
	if t.verdicts {
		return &knftables.Map{Name: name, Type: t.keyText() + " : verdict"}
	}
	s := &knftables.Set{Name: name, Type: t.keyText()}
	if t.timeout {
		// "dynamic" because the kernel adds it anyway for sets updated from the packet
		// path, and a later add with different flags would fail.
		s.Flags = []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}
	}
	return s
}
