// Package expectations records, per controller key, the creations and deletions a controller
// has asked the API server for and not yet seen in its informer, so that a sync never acts on
// a cache that does not show its own last writes (kube-controller-manager's "controller
// expectations").
//
// # Who calls what
//
// The controller's sync owns the raising side: it checks Satisfied(key) first and does
// nothing (or only writes status) while it is false; when it is true, it calls
// ExpectCreations and ExpectDeletions for what it is about to ask for, before sending the
// requests, so that an event arriving before the request returns is not missed. A request
// that fails, or whose event evidently came before the expectation was raised, is settled by
// the sync itself with CreationObserved or DeletionObserved: no event will come for it.
//
// The informer event handlers own the observing side: an added object calls
// CreationObserved(owner), an object going away (deletionTimestamp set, or gone) calls
// DeletionObserved(owner, object); both may run concurrently with a sync. A deleted owner
// calls Delete(owner), as does a sync that no longer finds the owner in its cache.
//
// Deletions are tracked by object key rather than counted, so that the update that sets a
// pod's deletionTimestamp and the delete event that follows settle it once. The key is any
// string naming the object: controllers use the pod's namespace/name; the Job controller
// keeps a second Expectations in which the "deleted" objects are pod UIDs losing the Job's
// tracking finalizer (a pod without it no longer counts for the Job, so for the Job it is
// as good as gone). That keeps this package free of a Job-only set.
//
// # Raising, replacing and the TTL
//
// A record starts when an expectation is raised on a key with nothing pending, or whose
// record is older than Timeout: it replaces what was there, as Kubernetes' SetExpectations
// does, so a record that expired with events still missing does not carry them over. An
// expectation raised while the key's record is still pending and fresh adds to it (as
// Kubernetes' RaiseExpectations does): a Job deletes pods in two steps of one sync, and the
// first step's deletions must still be waited for. Observations never renew a record.
//
// Satisfied reports true once nothing is pending, or once the record is older than Timeout
// (five minutes, as in Kubernetes): an event that never comes, such as for a create the
// API server committed after the client had given up on it, must not wedge a controller.
//
// All methods are safe for concurrent use.
package expectations
