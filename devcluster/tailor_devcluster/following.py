"""Following objects through a watch, as the API server's JSON.

The Python client's `watch.Watch` turns every event into model objects; with thousands
of pods that decoding costs more CPU than the server spends. This reads raw lines.
"""

import json
import threading
import time
from collections.abc import Callable
from typing import Any

Handle = Callable[[str, dict[str, Any]], None]  # (ADDED | MODIFIED | DELETED, object)
ListCall = Callable[..., Any]  # e.g. functools.partial(core.list_namespaced_pod, "ns")


def follow(
    list_call: ListCall,
    handle: Handle,
    stop: threading.Event,
    label_selector: str = "",
    timeout_seconds: int = 60,
) -> None:
    """Calls `handle` for every object listed (as ADDED), then for every watch event,
    until `stop` is set (seen within `timeout_seconds`). A dropped connection resumes
    from the last version seen; 410 Gone lists again."""
    version = ""
    while not stop.is_set():
        try:
            version = _follow_once(
                list_call, handle, stop, label_selector, timeout_seconds, version
            )
        except Exception:  # a dropped connection: resume from the last version seen
            if not stop.is_set():
                time.sleep(0.5)


def _follow_once(
    list_call: ListCall,
    handle: Handle,
    stop: threading.Event,
    label_selector: str,
    timeout_seconds: int,
    version: str,
) -> str:
    if not version:
        listed = json.loads(list_call(label_selector=label_selector, _preload_content=False).data)
        for item in listed["items"]:
            handle("ADDED", item)
        version = listed["metadata"]["resourceVersion"]
    stream = list_call(
        label_selector=label_selector,
        watch=True,
        resource_version=version,
        allow_watch_bookmarks=True,
        timeout_seconds=timeout_seconds,
        _preload_content=False,
    )
    buffer = b""
    try:
        for chunk in stream.stream(65536):
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                event = json.loads(line)
                if event["type"] == "ERROR":
                    return ""  # 410 Gone: the version is too old, list again
                version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    handle(event["type"], event["object"])
            if stop.is_set():
                break
    finally:
        stream.release_conn()
    return version
