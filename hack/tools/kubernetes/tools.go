//go:build tools

// Package tools pins the Kubernetes control-plane commands that the local
// sandbox runs. They are built with `go build` from this module (see
// hack/build-tools.sh); `go install pkg@version` cannot build them because
// k8s.io/kubernetes's own go.mod uses replace directives.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
