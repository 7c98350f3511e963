"""The real Prometheus scrapes a prometheus-client endpoint and answers PromQL."""

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tailor_devcluster.ports import free_port
from tailor_devcluster.waiting import eventually

pytestmark = pytest.mark.integration


def test_scraped_value_is_returned_by_a_query(prometheus):
    registry = CollectorRegistry()
    budget = Gauge(
        "tailor_test_budget_limit_gpu_seconds",
        "A value the test sets",
        ["namespace"],
        registry=registry,
    )
    budget.labels(namespace="team-a").set(9000.5)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prometheus.add_target(f"127.0.0.1:{port}", job="foundation-test")
        result = eventually(
            "the gauge in Prometheus",
            lambda: (
                prometheus.query('tailor_test_budget_limit_gpu_seconds{job="foundation-test"}')
                or None
            ),
            timeout=30,
        )
        assert result[0]["metric"]["namespace"] == "team-a"
        assert float(result[0]["value"][1]) == 9000.5
        budget.labels(namespace="team-a").set(12.25)
        eventually(
            "the new value in Prometheus",
            lambda: (
                float(prometheus.query("tailor_test_budget_limit_gpu_seconds")[0]["value"][1])
                == 12.25
            ),
            timeout=30,
        )
        target = next(
            t for t in prometheus.active_targets() if t["labels"]["job"] == "foundation-test"
        )
        assert target["health"] == "up"
    finally:
        server.shutdown()
        thread.join(timeout=5)
