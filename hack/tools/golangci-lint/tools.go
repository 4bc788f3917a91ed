//go:build tools

// Package tools pins golangci-lint, built from its module (no install script).
package tools

import _ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
