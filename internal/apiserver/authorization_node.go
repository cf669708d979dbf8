package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/nanokube/nanokube/internal/apiserver/authz"
	"github.com/nanokube/nanokube/internal/storage"
)

// DefaultAuthorizationModes is kube-apiserver's usual --authorization-mode.
const DefaultAuthorizationModes = AuthorizationNode + "," + AuthorizationRBAC

var (
	podsGVR              = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	persistentVolumesGVR = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}
)

// ParseAuthorizationModes splits an --authorization-mode value (a comma list of Node, RBAC
// and AlwaysAllow) and checks it as kube-apiserver does.
func ParseAuthorizationModes(value string) ([]string, error) {
	if strings.TrimSpace(value) == "" {
		value = DefaultAuthorizationModes
	}
	var modes []string
	seen := map[string]bool{}
	for _, m := range strings.Split(value, ",") {
		m = strings.TrimSpace(m)
		switch m {
		case AuthorizationNode, AuthorizationRBAC, AuthorizationAlwaysAllow:
		default:
			return nil, fmt.Errorf("authorization-mode %q is not a valid mode: want a comma list of %s, %s and %s",
				m, AuthorizationNode, AuthorizationRBAC, AuthorizationAlwaysAllow)
		}
		if seen[m] {
			return nil, fmt.Errorf("authorization-mode %q has mode specified more than once", value)
		}
		seen[m] = true
		modes = append(modes, m)
	}
	return modes, nil
}

// nodeGraphBookmarks is how often the graph's watches report the caches' revision when
// nothing changes, so that a refused node request waits at most that long for the graph.
const nodeGraphBookmarks = 250 * time.Millisecond

// newNodeAuthorizer makes the Node authorizer over a graph runNodeGraph keeps current.
func (s *Server) newNodeAuthorizer() (authz.Authorizer, error) {
	pods, pvs := s.resources[podsGVR], s.resources[persistentVolumesGVR]
	if pods == nil || pvs == nil {
		return nil, errors.New("authorization mode Node needs the resources pods and persistentvolumes, which are not served")
	}
	s.nodeGraph = authz.NewNodeGraph()
	fresh := func(ctx context.Context) {
		s.nodeGraph.WaitFor(ctx, pods.cache.Revision(), pvs.cache.Revision(), time.Second)
	}
	return authz.NewNode(s.nodeGraph, fresh), nil
}

// runNodeGraph feeds the Node authorizer's graph from the pod and persistent volume watch
// caches until ctx is done.
func (s *Server) runNodeGraph(ctx context.Context) {
	g := s.nodeGraph
	feed := func(gvr schema.GroupVersionResource, set func(any), del func(key string), keys func() []string, observed func(int64)) {
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			err := s.watchIntoGraph(ctx, s.resources[gvr].cache, set, del, keys, observed)
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("node authorizer graph: watch ended; starting again", "resource", gvr.Resource, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		feed(persistentVolumesGVR,
			func(o any) { g.SetPV(o.(*corev1.PersistentVolume)) },
			func(key string) { g.DeletePV(key) },
			g.PVNames,
			func(rev int64) { g.Observed(0, rev) })
	}()
	feed(podsGVR,
		func(o any) { g.SetPod(o.(*corev1.Pod)) },
		func(key string) {
			ns, name, _ := strings.Cut(key, "/")
			g.DeletePod(ns, name)
		},
		g.PodKeys,
		func(rev int64) { g.Observed(rev, 0) })
	<-done
}

// watchIntoGraph applies one watch of cache: the initial state (forgetting what the graph
// held but the cache no longer does), then every change, until the watch ends.
func (s *Server) watchIntoGraph(ctx context.Context, cache *storage.Cacher, set func(any), del func(key string),
	keys func() []string, observed func(int64)) error {
	w, err := cache.Watch(ctx, storage.WatchOptions{SendInitialEvents: true, BookmarkInterval: nodeGraphBookmarks})
	if err != nil {
		return err
	}
	defer w.Stop()
	seen := map[string]bool{}
	initial := true
	for ev := range w.ResultChan() {
		var key string
		if ev.Object != nil {
			if m, err := meta.Accessor(ev.Object); err == nil {
				key = m.GetName()
				if m.GetNamespace() != "" {
					key = m.GetNamespace() + "/" + key
				}
			}
		}
		switch ev.Type {
		case watch.Added, watch.Modified:
			set(ev.Object)
			if initial {
				seen[key] = true
			}
		case watch.Deleted:
			del(key)
		case watch.Bookmark:
			if ev.InitialEventsEnd && initial {
				for _, k := range keys() {
					if !seen[k] {
						del(k)
					}
				}
				initial, seen = false, nil
			}
		}
		if !initial {
			observed(ev.Revision)
		}
	}
	return errors.New("watch closed")
}

// deleteRetiredBindings deletes default ClusterRoleBindings of earlier versions
// (authz.RetiredClusterRoleBindings), unless an administrator took them over by setting
// autoupdate=false.
func (s *Server) deleteRetiredBindings(ctx context.Context) error {
	bindings := s.resources[clusterRoleBindingsGVR]
	if bindings == nil {
		return nil
	}
	for _, name := range authz.RetiredClusterRoleBindings() {
		key := bindings.key("", name)
		cur, err := bindings.get(ctx, key, 0)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		m, _ := meta.Accessor(cur)
		if !authz.AutoUpdate(m) || m.GetLabels()[authz.BootstrapLabel] != "rbac-defaults" {
			continue
		}
		rev, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
		if _, err := bindings.remove(ctx, key, rev); err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("retired ClusterRoleBinding %s: %w", name, err)
		}
		s.log.Info("deleted a retired default ClusterRoleBinding", "name", name)
	}
	return nil
}
