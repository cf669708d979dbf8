package scheduler

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nanokube/nanokube/internal/scheduler/framework"
)

// cache is the scheduler's mutable view of the cluster: nodes and the pods bound or assumed
// on them. It hands the scheduling loop incremental snapshots: every change bumps a global
// generation and moves the node to the front of a list, so updateSnapshot copies only the
// nodes changed since the snapshot's generation (kube-scheduler's cache design).
type cache struct {
	mu         sync.Mutex
	nodes      map[string]*nodeItem
	head       *nodeItem // most recently changed first
	order      []string  // node names in the order nodes appeared
	orderDirty bool      // a node was added or removed since the last snapshot
	pods       map[types.UID]*podState
	generation int64
}

type nodeItem struct {
	info       *framework.NodeInfo
	prev, next *nodeItem
}

type podState struct {
	info    *framework.PodInfo
	node    string
	assumed bool
}

func newCache() *cache {
	return &cache{nodes: map[string]*nodeItem{}, pods: map[types.UID]*podState{}}
}

// touch marks a node changed: new generation, front of the list.
func (c *cache) touch(name string) *nodeItem {
	item, ok := c.nodes[name]
	if !ok {
		item = &nodeItem{info: framework.NewNodeInfo(nil)}
		c.nodes[name] = item
	} else if item != c.head {
		// unlink
		if item.prev != nil {
			item.prev.next = item.next
		}
		if item.next != nil {
			item.next.prev = item.prev
		}
		item.prev, item.next = nil, nil
	} else {
		c.generation++
		item.info.Generation = c.generation
		return item
	}
	item.next = c.head
	if c.head != nil {
		c.head.prev = item
	}
	c.head = item
	c.generation++
	item.info.Generation = c.generation
	return item
}

func (c *cache) unlink(name string) {
	item := c.nodes[name]
	if item.prev != nil {
		item.prev.next = item.next
	}
	if item.next != nil {
		item.next.prev = item.prev
	}
	if c.head == item {
		c.head = item.next
	}
	delete(c.nodes, name)
}

func (c *cache) addNode(node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	item := c.touch(node.Name)
	if item.info.Node == nil {
		c.order = append(c.order, node.Name)
		c.orderDirty = true
	}
	item.info.SetNode(node)
}

func (c *cache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	item, ok := c.nodes[name]
	if !ok {
		return
	}
	for i, n := range c.order {
		if n == name {
			c.order = append(c.order[:i:i], c.order[i+1:]...)
			break
		}
	}
	c.orderDirty = true
	if len(item.info.Pods) == 0 {
		c.unlink(name)
		c.generation++
		return
	}
	// Pods still point at the node: keep their accounting until they go.
	c.touch(name).info.Node = nil
}

// addPod records a bound pod; a pod this scheduler assumed is confirmed.
func (c *cache) addPod(pi *framework.PodInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.pods[pi.Pod.UID]; ok {
		c.removeLocked(old)
	}
	c.addLocked(pi, false)
}

func (c *cache) addLocked(pi *framework.PodInfo, assumed bool) {
	name := pi.Pod.Spec.NodeName
	c.touch(name).info.AddPod(pi)
	c.pods[pi.Pod.UID] = &podState{info: pi, node: name, assumed: assumed}
}

func (c *cache) removeLocked(ps *podState) {
	item, ok := c.nodes[ps.node]
	delete(c.pods, ps.info.Pod.UID)
	if !ok {
		return
	}
	item = c.touch(ps.node)
	item.info.RemovePod(ps.info.Pod)
	if item.info.Node == nil && len(item.info.Pods) == 0 {
		c.unlink(ps.node)
	}
}

// removePod forgets a pod (deleted, or finished).
func (c *cache) removePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[uid]; ok {
		c.removeLocked(ps)
	}
}

// assume accounts for a pod the scheduler placed before the API server confirms the binding.
func (c *cache) assume(pi *framework.PodInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(pi, true)
}

// forget drops an assumed pod whose binding failed.
func (c *cache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[uid]; ok && ps.assumed {
		c.removeLocked(ps)
	}
}

// has reports whether a pod is bound or assumed.
func (c *cache) has(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pods[uid]
	return ok
}

// nodeCount returns the number of known nodes.
func (c *cache) nodeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order)
}

// updateSnapshot brings snap up to date, copying only the nodes that changed.
func (c *cache) updateSnapshot(snap *framework.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap.ByName == nil {
		snap.ByName = map[string]*framework.NodeInfo{}
	}
	rebuild := c.orderDirty
	for item := c.head; item != nil && item.info.Generation > snap.Generation; item = item.next {
		clone := item.info.Clone()
		name := item.info.Name()
		existing, ok := snap.ByName[name]
		if !ok {
			if clone.Node != nil {
				snap.ByName[name] = clone
				rebuild = true
			}
			continue
		}
		if clone.Node == nil {
			rebuild = true
			continue
		}
		if (len(existing.PodsWithAffinity) > 0) != (len(clone.PodsWithAffinity) > 0) ||
			(len(existing.PodsWithRequiredAntiAffinity) > 0) != (len(clone.PodsWithRequiredAntiAffinity) > 0) {
			rebuild = true
		}
		*existing = *clone
	}
	snap.Generation = c.generation
	if !rebuild {
		return
	}
	byName := make(map[string]*framework.NodeInfo, len(c.order))
	list := make([]*framework.NodeInfo, 0, len(c.order))
	for _, name := range c.order {
		ni := snap.ByName[name]
		if ni == nil {
			ni = c.nodes[name].info.Clone()
		}
		byName[name] = ni
		list = append(list, ni)
	}
	snap.ByName = byName
	snap.RebuildLists(list)
	c.orderDirty = false
}
