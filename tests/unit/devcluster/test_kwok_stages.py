"""The kwok stages and the helpers that drive them stay in agreement."""

import yaml

from tailor_contract.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE
from tailor_devcluster import kwokctl
from tailor_devcluster.cluster import ClusterSettings
from tailor_devcluster.kwok import (
    MANAGED_LABEL,
    node_manifest,
    stages_file,
)


def load_stages() -> list[dict]:
    return list(yaml.safe_load_all(stages_file().read_text()))


def test_every_stage_is_well_formed_and_uniquely_named():
    stages = load_stages()
    names = [stage["metadata"]["name"] for stage in stages]
    assert len(names) == len(set(names))
    for stage in stages:
        assert stage["kind"] == "Stage"
        assert stage["spec"]["resourceRef"]["kind"] in {"Node", "Pod"}
        assert stage["spec"]["selector"]["matchExpressions"], stage["metadata"]["name"]
        assert stage["spec"]["next"], stage["metadata"]["name"]


def test_pods_have_a_full_lifecycle():
    pod_stages = {
        s["metadata"]["name"] for s in load_stages() if s["spec"]["resourceRef"]["kind"] == "Pod"
    }
    assert {"pod-create", "pod-ready", "pod-exit", "pod-terminate", "pod-delete"} <= pod_stages


def test_annotations_driven_by_kwokctl_are_read_by_the_stages():
    text = stages_file().read_text()
    for annotation in (
        kwokctl.EXIT_CODE,
        kwokctl.REASON,
        kwokctl.MESSAGE,
        kwokctl.EXIT_AFTER,
        kwokctl.IMAGE_PULL,
        kwokctl.START_DELAY,
    ):
        assert f'"{annotation}"' in text, f"{annotation} is set by kwokctl but no stage reads it"


def test_gpu_node_manifest_declares_gpus_and_product():
    specs = ClusterSettings(state_dir=None, gpu_nodes=3, gpus_per_node=4).node_specs()  # type: ignore[arg-type]
    assert [s.name for s in specs] == ["gpu-node-0", "gpu-node-1", "gpu-node-2"]
    assert specs[0].product != specs[1].product  # products alternate
    assert specs[0].product == specs[2].product
    node = node_manifest(specs[1])
    assert node.status.capacity[GPU_RESOURCE] == "4"
    assert node.status.allocatable == node.status.capacity
    assert node.metadata.labels[GPU_PRODUCT_LABEL] == specs[1].product
    assert node.metadata.labels[MANAGED_LABEL] == "true"
