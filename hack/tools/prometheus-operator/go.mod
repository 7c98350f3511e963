// Pins the Prometheus Operator, whose CustomResourceDefinitions (ServiceMonitor,
// PrometheusRule) the chart tests install so the API server validates the chart's
// monitoring objects. Nothing here is built: tests read the CRDs from the module
// (go mod download -json), checked against go.sum.
module tailor.dev/hack/tools/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
