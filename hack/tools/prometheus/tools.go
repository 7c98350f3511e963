//go:build tools

// Package tools pins the Prometheus server built by hack/build-tools.sh.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
