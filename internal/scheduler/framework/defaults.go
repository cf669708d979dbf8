package framework

// Default returns the default plugin set with kube-scheduler's default score weights.
func Default() *Framework {
	return &Framework{
		PreFilters: []PreFilterPlugin{NodePorts{}, InterPodAffinity{}, PodTopologySpread{}, VolumeBinding{}},
		Filters: []FilterPlugin{NodeUnschedulable{}, NodeName{}, TaintToleration{}, NodeAffinity{}, NodePorts{},
			NodeResourcesFit{}, VolumeBinding{}, PodTopologySpread{}, InterPodAffinity{}},
		PreScores: []PreScorePlugin{NodeAffinity{}, PodTopologySpread{}, SelectorSpread{}},
		Scores: []WeightedScore{
			{NodeResourcesFit{}, 1},
			{BalancedAllocation{}, 1},
			{NodeAffinity{}, 2},
			{TaintToleration{}, 3},
			{PodTopologySpread{}, 2},
			{SelectorSpread{}, 1},
		},
	}
}
