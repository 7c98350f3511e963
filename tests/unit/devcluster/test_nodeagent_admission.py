"""Admission and capacity: the node agent offers its devices and runs only what fits."""

import pytest

from tailor_contract.nodes import CPU_SLOT_PRODUCT
from tailor_devcluster.nodeagent.admission import (
    QuantityError,
    admission_failure,
    parse_quantity,
    pod_requests,
)
from tailor_devcluster.nodeagent.capacity import (
    Devices,
    allocatable,
    detect_devices,
    node_manifest,
    product_label,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("2", 2.0),
        ("1Gi", 2.0**30),
        ("1536Mi", 1.5 * 2**30),
        ("1e3", 1000.0),
        ("4k", 4000.0),
        (3, 3.0),
    ],
)
def test_quantities(text, value):
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "1Xi", "abc", "1.2.3"])
def test_bad_quantities_are_named(text):
    with pytest.raises(QuantityError, match="not a resource quantity"):
        parse_quantity(text)


def test_requests_add_up_over_containers():
    pod = {
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "500m", "nvidia.com/gpu": "1"}}},
                {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                {},
            ]
        }
    }
    assert pod_requests(pod) == {"cpu": 1.5, "nvidia.com/gpu": 1.0, "memory": 2.0**30}


def test_a_pod_fits_until_a_resource_runs_out():
    node = {"cpu": 2.0, "memory": 8.0 * 2**30, "nvidia.com/gpu": 1.0, "pods": 110.0}
    trial = {"cpu": 1.0, "nvidia.com/gpu": 1.0, "pods": 1.0}
    validation = {"cpu": 0.5, "pods": 1.0}
    assert admission_failure(node, [], trial) is None
    assert admission_failure(node, [trial], validation) is None
    failure = admission_failure(node, [trial], trial)
    assert failure is not None
    reason, message = failure
    assert reason == "OutOfnvidia.com/gpu"
    assert message == (
        "Pod was rejected: Node didn't have enough resource: nvidia.com/gpu, requested: 1, "
        "used: 1, capacity: 1"
    )
    failure = admission_failure(node, [trial, validation], {"cpu": 1.0})
    assert failure is not None
    reason, message = failure
    assert reason == "OutOfcpu"
    assert "requested: 1000m, used: 1500m, capacity: 2000m" in message


def test_cpu_slots_when_there_is_no_cuda():
    devices = detect_devices(cpu_slots=3, use_cuda=False)
    assert devices == Devices(CPU_SLOT_PRODUCT, 3, cuda=False)
    with pytest.raises(ValueError, match="cpu_slots=0"):
        detect_devices(cpu_slots=0, use_cuda=False)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"),
        ("Tesla T4 (rev 1)", "Tesla-T4-rev-1"),
        ("x" * 80, "x" * 63),
    ],
)
def test_products_are_labelled_like_gpu_feature_discovery_does(name, label):
    assert product_label(name) == label


def test_the_node_offers_its_slots_with_its_product_label():
    devices = Devices(CPU_SLOT_PRODUCT, 2, cuda=False)
    node = node_manifest("tailor-agent", devices, 4, 8 * 2**30, "2026-03-01T12:00:00Z")
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == CPU_SLOT_PRODUCT
    assert labels["tailor.dev/node-agent"] == "true"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "2"
    assert node["status"]["allocatable"] == node["status"]["capacity"]
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert allocatable(devices, 4, 8 * 2**30)["nvidia.com/gpu"] == 2.0
