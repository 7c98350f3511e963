"""Following objects as raw JSON: what exists, then every change, until stopped."""

import functools
import threading
import time

import pytest
from kubernetes import client

from tailor_devcluster.following import follow
from tailor_devcluster.waiting import eventually

pytestmark = pytest.mark.integration


def test_follow_reports_listed_objects_then_changes_of_the_selected_ones(core_v1, namespace):
    def config_map(name: str, labelled: bool) -> dict:
        labels = {"followed": "yes"} if labelled else {}
        return {"metadata": {"name": name, "labels": labels}, "data": {"v": "1"}}

    core_v1.create_namespaced_config_map(namespace, config_map("before", True))
    seen: list[tuple[str, str, str]] = []

    def handle(kind: str, item: dict) -> None:
        seen.append((kind, item["metadata"]["name"], (item.get("data") or {}).get("v", "")))

    stop = threading.Event()
    lister = functools.partial(core_v1.list_namespaced_config_map, namespace)
    follower = threading.Thread(
        target=follow, args=(lister, handle, stop, "followed"), kwargs={"timeout_seconds": 1}
    )
    follower.start()
    try:
        eventually("the existing ConfigMap listed", lambda: ("ADDED", "before", "1") in seen)
        core_v1.create_namespaced_config_map(namespace, config_map("after", True))
        core_v1.create_namespaced_config_map(namespace, config_map("ignored", False))
        core_v1.patch_namespaced_config_map("after", namespace, {"data": {"v": "2"}})
        core_v1.delete_namespaced_config_map("before", namespace)
        expected = [("ADDED", "after", "1"), ("MODIFIED", "after", "2"), ("DELETED", "before", "1")]
        eventually("the changes followed", lambda: all(e in seen for e in expected))
    finally:
        stop.set()
        follower.join(10)
    assert not follower.is_alive(), "follow did not stop"
    assert all(name != "ignored" for _, name, _ in seen)
    assert seen.count(("ADDED", "after", "1")) == 1, "an event was reported twice"


def test_follow_keeps_following_across_watch_timeouts(core_v1, namespace):
    seen: list[str] = []
    stop = threading.Event()
    lister = functools.partial(core_v1.list_namespaced_config_map, namespace)
    follower = threading.Thread(
        target=follow,
        args=(lister, lambda kind, item: seen.append(item["metadata"]["name"]), stop, "followed"),
        kwargs={"timeout_seconds": 1},
    )
    follower.start()
    try:
        for index in range(3):  # each create lands in a later watch request
            meta = client.V1ObjectMeta(name=f"cm-{index}", labels={"followed": "yes"})
            body = client.V1ConfigMap(metadata=meta)
            core_v1.create_namespaced_config_map(namespace, body)
            name = f"cm-{index}"
            eventually(f"{name} followed", lambda: name in seen)  # noqa: B023 (called at once)
            time.sleep(1.5)
    finally:
        stop.set()
        follower.join(10)
    assert seen == ["cm-0", "cm-1", "cm-2"]
