"""A container's environment, resolved the way the kubelet resolves it.

envFrom first, then env (later wins); values may refer to earlier variables as
$(NAME); secretKeyRef, configMapKeyRef and fieldRef are read from the API server
through `Lookups`. A missing Secret, ConfigMap or key is the kubelet's
CreateContainerConfigError, with its wording.
"""

import re
from collections.abc import Mapping
from typing import Any, Protocol

POD_IP = "127.0.0.1"  # every process of the node agent shares the host's network
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class ContainerConfigError(Exception):
    """The container cannot start until someone fixes its configuration."""

    reason = "CreateContainerConfigError"


class Lookups(Protocol):
    """Reads a Secret's (decoded) or a ConfigMap's data; None when it does not exist."""

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def token(
        self, namespace: str, service_account: str, audience: str | None, seconds: int
    ) -> str:
        """A service-account token from the TokenRequest API."""
        ...


def expand(text: str, env: Mapping[str, str]) -> str:
    """$(NAME) becomes NAME's value when defined, else stays as written; $$ is a $."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """The downward API's fieldRef paths a pod may name."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": POD_IP,
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path] or "")
    subscript = _SUBSCRIPT.match(path)
    if subscript:
        return str((metadata.get(subscript.group(1)) or {}).get(subscript.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _source(lookups: Lookups, namespace: str, kind: str, name: str) -> Mapping[str, str] | None:
    return (
        lookups.secret(namespace, name) if kind == "Secret" else lookups.config_map(namespace, name)
    )


def _key_ref(lookups: Lookups, namespace: str, kind: str, ref: Mapping[str, Any]) -> str | None:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    data = _source(lookups, namespace, kind, name)
    if data is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def _env_from(
    pod: Mapping[str, Any], container: Mapping[str, Any], lookups: Lookups
) -> dict[str, str]:
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        prefix = item.get("prefix", "")
        for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            ref = item.get(field)
            if ref is None:
                continue
            data = _source(lookups, namespace, kind, ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            env.update({prefix + key: value for key, value in data.items()})
    return env


def resolve_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], lookups: Lookups
) -> dict[str, str]:
    """The container's variables, in the order and with the precedence of the kubelet."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    env = _env_from(pod, container, lookups)
    for item in container.get("env") or []:
        name = item["name"]
        source = item.get("valueFrom")
        if source is None:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        value: str | None
        if "secretKeyRef" in source:
            value = _key_ref(lookups, namespace, "Secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref(lookups, namespace, "ConfigMap", source["configMapKeyRef"])
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"].get("fieldPath", ""))
        else:
            kinds = ", ".join(sorted(source))
            raise ContainerConfigError(f"env {name}: unsupported valueFrom {kinds}")
        if value is not None:
            env[name] = value
    return env
