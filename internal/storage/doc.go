// Package storage keeps API objects in etcd and serves watches and lists from memory.
//
// Store is the etcd-backed store. Keys are chosen by the caller (the API server uses
// /registry/[<group>/]<resource>/[<namespace>/]<name>); values are objects encoded once with
// the configured encoder (protobuf for built-in kinds). An object's resourceVersion is the etcd
// mod revision of its key: it is never stored in the value, and is set on every object the Store
// returns. Every write is a single etcd transaction that compares the key's create or mod
// revision, so concurrent writers get ErrConflict instead of losing updates.
//
// A Transformer registered for a key prefix (SetTransformer) changes every value under it on
// the way to and from etcd, on every path: Get, List, Delete's previous value and the
// Cacher's events. This is encryption at rest (package encryption); Stale tells an update
// that changes nothing that the stored value was written with an older key.
//
// Cacher is the watch cache of one key prefix (one resource): the current objects and a ring of
// recent events, fed by one etcd watch. It serves resourceVersion=0 lists and every watch; a
// watch from a revision older than the ring gets ErrExpired, which the API server turns into
// 410 Gone.
//
// Objects returned by Store belong to the caller. Objects returned by Cacher (lists, events) are
// shared with the cache and with other watchers: callers must not modify them (DeepCopy first).
//
// Errors are wrapped sentinels: ErrNotFound, ErrExists, ErrConflict, ErrExpired, ErrTimeout;
// only the API server maps them to Kubernetes Status codes.
package storage
