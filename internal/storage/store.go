package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// The error classes of this package. Callers match them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("the object has been modified")
	ErrExpired  = errors.New("resource version expired")
	ErrTimeout  = errors.New("timed out waiting for resource version")
)

// Store is the etcd-backed object store.
type Store struct {
	client  *clientv3.Client
	encoder runtime.Encoder
	decoder runtime.Decoder
	// transformers, by key prefix, change values on their way to and from etcd.
	transformers atomic.Pointer[[]prefixTransformer]
}

// Transformer changes encoded values on their way to and from etcd: encryption at rest. The
// key is the etcd key of the value, for transformers that authenticate it with the data.
type Transformer interface {
	// TransformToStorage returns the value to store for data.
	TransformToStorage(data []byte, key string) ([]byte, error)
	// TransformFromStorage returns the data of a stored value. stale reports that the value
	// is not what TransformToStorage writes now (an older key or provider), so an update
	// should rewrite it even when the object did not change.
	TransformFromStorage(value []byte, key string) (data []byte, stale bool, err error)
}

type prefixTransformer struct {
	prefix string
	t      Transformer
}

// SetTransformer transforms the values of every key under prefix with t from now on (nil
// removes it). Set transformers before serving: values written before stay as they are.
func (s *Store) SetTransformer(prefix string, t Transformer) {
	for {
		old := s.transformers.Load()
		var next []prefixTransformer
		if old != nil {
			for _, pt := range *old {
				if pt.prefix != prefix {
					next = append(next, pt)
				}
			}
		}
		if t != nil {
			next = append(next, prefixTransformer{prefix, t})
		}
		if s.transformers.CompareAndSwap(old, &next) {
			return
		}
	}
}

func (s *Store) transformer(key string) Transformer {
	pts := s.transformers.Load()
	if pts == nil {
		return nil
	}
	for _, pt := range *pts {
		if strings.HasPrefix(key, pt.prefix) {
			return pt.t
		}
	}
	return nil
}

// New returns a Store that encodes values with enc and decodes them with dec.
func New(client *clientv3.Client, enc runtime.Encoder, dec runtime.Decoder) *Store {
	return &Store{client: client, encoder: enc, decoder: dec}
}

// Client returns the underlying etcd client.
func (s *Store) Client() *clientv3.Client { return s.client }

// Get returns the object at key, at the latest revision (rev 0) or at rev.
func (s *Store) Get(ctx context.Context, key string, rev int64) (runtime.Object, error) {
	var opts []clientv3.OpOption
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.client.Get(ctx, key, opts...)
	if err != nil {
		return nil, mapEtcdError(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	obj, _, err := s.decode(key, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	return obj, err
}

// Stale reports whether the value at key, if still at revision rev, was written by a
// transformer other than the current one (an old encryption key): an update that changes
// nothing should then write it anyway, which is how keys are rotated.
func (s *Store) Stale(ctx context.Context, key string, rev int64) (bool, error) {
	t := s.transformer(key)
	if t == nil {
		return false, nil
	}
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return false, mapEtcdError(err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].ModRevision != rev {
		return false, nil // gone or changed: the caller's write will conflict
	}
	_, stale, err := t.TransformFromStorage(resp.Kvs[0].Value, key)
	if err != nil {
		return false, fmt.Errorf("%s: %w", key, err)
	}
	return stale, nil
}

// ListOptions bound a range read.
type ListOptions struct {
	// Revision reads at a past revision; 0 is the latest.
	Revision int64
	// StartKey continues a paginated list: only keys >= StartKey under the prefix are read.
	StartKey string
	// Limit caps the number of keys read (0: no limit).
	Limit int64
}

// ListResult is one page of a range read.
type ListResult struct {
	Items    []runtime.Object
	Keys     []string
	Revision int64 // the revision the page was read at
	More     bool  // keys remain after the last one returned
}

// List reads the objects under prefix (which should end in "/").
func (s *Store) List(ctx context.Context, prefix string, opts ListOptions) (*ListResult, error) {
	start := prefix
	if opts.StartKey != "" {
		if !strings.HasPrefix(opts.StartKey, prefix) {
			return nil, fmt.Errorf("continue key %q is outside %q", opts.StartKey, prefix)
		}
		start = opts.StartKey
	}
	ops := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))}
	if opts.Revision > 0 {
		ops = append(ops, clientv3.WithRev(opts.Revision))
	}
	if opts.Limit > 0 {
		ops = append(ops, clientv3.WithLimit(opts.Limit))
	}
	resp, err := s.client.Get(ctx, start, ops...)
	if err != nil {
		return nil, mapEtcdError(err)
	}
	out := &ListResult{Revision: resp.Header.Revision, More: resp.More,
		Items: make([]runtime.Object, 0, len(resp.Kvs)), Keys: make([]string, 0, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		obj, _, err := s.decode(string(kv.Key), kv.Value, kv.ModRevision)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, obj)
		out.Keys = append(out.Keys, string(kv.Key))
	}
	return out, nil
}

// Create stores obj at key if the key does not exist. obj's resourceVersion is set to the
// new revision.
func (s *Store) Create(ctx context.Context, key string, obj runtime.Object) error {
	data, err := s.encode(key, obj)
	if err != nil {
		return err
	}
	resp, retried, err := s.commitGuarded(ctx, clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		clientv3.OpPut(key, string(data)), key)
	if err != nil {
		return mapEtcdError(err)
	}
	if !resp.Succeeded {
		if rev, ok := ownWrite(resp, retried, data, 0); ok {
			return setRevision(obj, rev)
		}
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	return setRevision(obj, resp.Header.Revision)
}

// Update replaces the object at key if its mod revision is still rev. obj's resourceVersion is
// set to the new revision. ErrNotFound if the key is gone, ErrConflict if it changed.
func (s *Store) Update(ctx context.Context, key string, obj runtime.Object, rev int64) error {
	data, err := s.encode(key, obj)
	if err != nil {
		return err
	}
	resp, retried, err := s.commitGuarded(ctx, clientv3.Compare(clientv3.ModRevision(key), "=", rev),
		clientv3.OpPut(key, string(data)), key)
	if err != nil {
		return mapEtcdError(err)
	}
	if !resp.Succeeded {
		if newRev, ok := ownWrite(resp, retried, data, rev); ok {
			return setRevision(obj, newRev)
		}
		if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return fmt.Errorf("%s: %w", key, ErrConflict)
	}
	return setRevision(obj, resp.Header.Revision)
}

// Delete removes the object at key if its mod revision is still rev (rev 0: unconditionally)
// and returns the deleted object with its resourceVersion set to the deletion's revision.
func (s *Store) Delete(ctx context.Context, key string, rev int64) (runtime.Object, error) {
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	if rev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	}
	resp, err := s.client.Txn(ctx).If(cmp).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return nil, mapEtcdError(err)
	}
	if !resp.Succeeded {
		if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("%s: %w", key, ErrConflict)
	}
	prev := resp.Responses[0].GetResponseDeleteRange().PrevKvs
	if len(prev) == 0 {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	obj, _, err := s.decode(key, prev[0].Value, resp.Header.Revision)
	return obj, err
}

// Revision returns etcd's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, "/registry/\x00revision", clientv3.WithCountOnly())
	if err != nil {
		return 0, mapEtcdError(err)
	}
	return resp.Header.Revision, nil
}

// Compact discards etcd history before rev.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	_, err := s.client.Compact(ctx, rev)
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return mapEtcdError(err)
	}
	return nil
}

func (s *Store) encode(key string, obj runtime.Object) ([]byte, error) {
	// The revision is the key's, never part of the value.
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	defer m.SetResourceVersion(rv)
	var b bytes.Buffer
	if err := s.encoder.Encode(obj, &b); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if t := s.transformer(key); t != nil {
		out, err := t.TransformToStorage(b.Bytes(), key)
		if err != nil {
			return nil, fmt.Errorf("%s: transform for storage: %w", key, err)
		}
		return out, nil
	}
	return b.Bytes(), nil
}

// decode returns the object stored at key as value; stale is the transformer's verdict.
func (s *Store) decode(key string, value []byte, rev int64) (obj runtime.Object, stale bool, err error) {
	if t := s.transformer(key); t != nil {
		if value, stale, err = t.TransformFromStorage(value, key); err != nil {
			return nil, false, fmt.Errorf("%s: transform from storage: %w", key, err)
		}
	}
	obj, _, err = s.decoder.Decode(value, nil, nil)
	if err != nil {
		return nil, false, fmt.Errorf("decode %s: %w", key, err)
	}
	return obj, stale, setRevision(obj, rev)
}

func setRevision(obj runtime.Object, rev int64) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	m.SetResourceVersion(formatRV(rev))
	return nil
}

// maxWriteAttempts bounds how often a write whose outcome is unknown is sent again.
const maxWriteAttempts = 5

// commitGuarded commits If(cmp) Then(op) Else(Get key), sending it again while its outcome is
// unknown: the connection to the member broke after the request went out, or the member gave
// up waiting for a raft leader (both codes.Unavailable; etcd's client retries neither for
// writes). The compare makes a second application impossible; retried tells the caller that
// a failed compare may be its own earlier attempt, which ownWrite recognises.
func (s *Store) commitGuarded(ctx context.Context, cmp clientv3.Cmp, op clientv3.Op, key string) (resp *clientv3.TxnResponse, retried bool, err error) {
	for attempt := 1; ; attempt++ {
		resp, err = s.client.Txn(ctx).If(cmp).Then(op).Else(clientv3.OpGet(key)).Commit()
		if err == nil || attempt == maxWriteAttempts || ctx.Err() != nil || !outcomeUnknown(err) {
			return resp, retried, err
		}
		retried = true
	}
}

// outcomeUnknown reports whether a write may or may not have been applied.
func outcomeUnknown(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}

// ownWrite recognises, after a retried write's compare failed, that the key holds exactly the
// value this write put (values carry a fresh uid or managed-fields time, so equal bytes mean
// our earlier attempt landed) at a revision after prevRev; it returns that revision.
func ownWrite(resp *clientv3.TxnResponse, retried bool, data []byte, prevRev int64) (int64, bool) {
	if !retried {
		return 0, false
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && kvs[0].ModRevision > prevRev && bytes.Equal(kvs[0].Value, data) {
		return kvs[0].ModRevision, true
	}
	return 0, false
}

func mapEtcdError(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("%w: %v", ErrExpired, err)
	case errors.Is(err, rpctypes.ErrFutureRev):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return err
}
