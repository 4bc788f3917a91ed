//go:build tools

// Package tools pins helm, built from its Go module (no download script).
package tools

import _ "helm.sh/helm/v4/cmd/helm"
