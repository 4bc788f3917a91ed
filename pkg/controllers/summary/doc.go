// Package summary maintains, in a target cluster, the ClusterSummary that its
// sources read: the capacity, allocatable and free resources of the nodes that
// pods can be scheduled to, and the labels those nodes share. It is debounced:
// however fast nodes and pods change, it writes at most about once per
// debounce period, and only when the summary changed.
package summary
