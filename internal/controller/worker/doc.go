// Package worker runs the workers of a controller in the standard shape: informer event
// handlers add keys to a rate-limited workqueue, and workers take them off and hand each to
// the controller's sync(ctx, key) error.
//
// Pool.Run owns the queue's end of life: it waits for the informer caches, runs the workers
// until ctx is done, then shuts the queue down and returns only once every worker has
// returned. The workqueue guarantees that one key is synced by one worker at a time. A key
// whose sync fails is logged and added again rate-limited; one whose sync succeeds has its
// rate-limiting history forgotten. Retries are unbounded: a controller that wants to give up
// on a key after N failures writes its own loop.
package worker
