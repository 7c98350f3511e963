"""The content of a pod's volumes, written into its folder before the process starts.

configMap and secret keys (all, or the listed items), downwardAPI fields, and
projected volumes of those plus a service-account token; emptyDir is an empty folder.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tailor_devcluster.nodeagent.env import Lookups, field_value
from tailor_devcluster.nodeagent.mounts import Mount, MountError, volume_folder

Files = dict[str, str]


def _items(source: Mapping[str, Any], data: Mapping[str, str], what: str) -> Files:
    """File name -> content: every key, or the listed items."""
    items = source.get("items")
    if not items:
        return dict(data)
    chosen: Files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise MountError(f"couldn't find key {item['key']} in {what}")
        chosen[item["path"]] = data[item["key"]]
    return chosen


def _keys(kind: str, source: Mapping[str, Any], namespace: str, lookups: Lookups) -> Files:
    name = source.get("name") or source.get("secretName") or ""
    data = (
        lookups.config_map(namespace, name)
        if kind == "configMap"
        else lookups.secret(namespace, name)
    )
    if data is None:
        if source.get("optional"):
            return {}
        raise MountError(f'{"configmap" if kind == "configMap" else "secret"} "{name}" not found')
    return _items(source, data, f"{kind} {namespace}/{name}")


def _downward(pod: Mapping[str, Any], source: Mapping[str, Any]) -> Files:
    files: Files = {}
    for item in source.get("items") or []:
        if "fieldRef" not in item:
            raise MountError(f"downwardAPI item {item.get('path')!r}: only fieldRef is supported")
        files[item["path"]] = field_value(pod, item["fieldRef"].get("fieldPath", ""))
    return files


def volume_files(pod: Mapping[str, Any], volume: Mapping[str, Any], lookups: Lookups) -> Files:
    """What a volume holds, as relative path -> text."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    if "configMap" in volume:
        return _keys("configMap", volume["configMap"], namespace, lookups)
    if "secret" in volume:
        return _keys("secret", volume["secret"], namespace, lookups)
    if "downwardAPI" in volume:
        return _downward(pod, volume["downwardAPI"])
    if "projected" not in volume:
        return {}  # emptyDir
    files: Files = {}
    account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    for source in volume["projected"].get("sources") or []:
        if "configMap" in source:
            files.update(_keys("configMap", source["configMap"], namespace, lookups))
        elif "secret" in source:
            files.update(_keys("secret", source["secret"], namespace, lookups))
        elif "downwardAPI" in source:
            files.update(_downward(pod, source["downwardAPI"]))
        elif "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            seconds = int(token.get("expirationSeconds") or 3600)
            files[token["path"]] = lookups.token(namespace, account, token.get("audience"), seconds)
    return files


def materialize(
    pod: Mapping[str, Any], mounts: Sequence[Mount], pod_dir: Path, lookups: Lookups
) -> None:
    """Creates every mounted volume's folder and writes its files."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    for name in dict.fromkeys(mount.volume for mount in mounts):
        folder = volume_folder(pod_dir, name)
        folder.mkdir(parents=True, exist_ok=True)
        for relative, content in volume_files(pod, volumes[name], lookups).items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
    for mount in mounts:
        # A subPath mount names a file or folder inside its volume; make the folder.
        if not mount.host_path.exists():
            mount.host_path.mkdir(parents=True, exist_ok=True)
