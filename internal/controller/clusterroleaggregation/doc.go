// Package clusterroleaggregation is kube-controller-manager's clusterrole-aggregation
// controller: the rules of a ClusterRole with an aggregationRule are the union of the rules
// of every other ClusterRole its selectors match (in name order, without duplicates), so
// that admin, edit and view grow with the roles labelled aggregate-to-admin/edit/view.
//
// Any ClusterRole change requeues every aggregated role; sync writes a role only when its
// rules differ from the computed union, and conflicts requeue it.
package clusterroleaggregation
