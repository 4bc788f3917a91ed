//go:build tools

// Package tools pins etcd for the local sandbox. go.etcd.io/etcd/server/v3 is
// the etcd command itself (its root package is main).
package tools

import _ "go.etcd.io/etcd/server/v3"
