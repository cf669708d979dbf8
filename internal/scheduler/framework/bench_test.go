package framework

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkSchedule measures one decision for a plain pod among 5,000 nodes holding 10 pods
// each: the decision core alone, without the API round trips.
func BenchmarkSchedule(b *testing.B) {
	var nodes []*NodeInfo
	for i := range 5000 {
		n := node(fmt.Sprintf("n%d", i), "32", "256Gi", withLabels("zone", fmt.Sprint("z", i%3)))
		ni := NewNodeInfo(n)
		for j := range 10 {
			ni.AddPod(NewPodInfo(pod(fmt.Sprintf("p%d-%d", i, j), requests("cpu", "100m", "memory", "128Mi"), onNode(n.Name)), 0))
		}
		nodes = append(nodes, ni)
	}
	snap := NewSnapshot(nodes...)
	pi := NewPodInfo(pod("new", requests("cpu", "100m", "memory", "128Mi")), 0)
	for _, par := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallelism=%d", par), func(b *testing.B) {
			fw := Default()
			fw.Parallelism = par
			for b.Loop() {
				if _, err := fw.Schedule(context.Background(), NewCycleState(), pi, snap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
