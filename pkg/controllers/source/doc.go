// Package source grants, in a target cluster, the identities of its sources
// what the protocol needs and nothing more. A Source binds its user or
// service account, in its own namespace only, to the flotilla-source role
// (PodChaperons, reading pods and their logs, exec/attach/port-forward,
// followed ConfigMaps, Secrets, Services and Ingresses), plus cluster-wide
// read access to ClusterSummaries and nodes. A ClusterSource does the same
// in every namespace. Its Ready condition says whether the identity exists.
package source
