"""A client identity whose requests the API server counts apart from everyone else's.

`apiserver_request_total` carries no client label, but API Priority and Fairness
metrics carry the FlowSchema a request matched. A ServiceAccount with a FlowSchema of
its own (at the `exempt` priority level, so it is never queued) makes
`apiserver_flowcontrol_dispatched_requests_total{flow_schema=NAME}` that client's count.
Used by benchmarks to measure an operator's API requests.
"""

import base64
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client

from tailor_devcluster.processes import ProcessFailed

DISPATCHED = "apiserver_flowcontrol_dispatched_requests_total{"
TOKEN_SECONDS = 86400


@dataclass(frozen=True)
class CountedClient:
    flow_schema: str
    kubeconfig: Path  # authenticates as the ServiceAccount with a bearer token


def counted_client(
    api: client.ApiClient,
    server: str,
    ca_cert: Path,
    account: tuple[str, str],
    kubeconfig: Path,
    cluster_role: str = "cluster-admin",
) -> CountedClient:
    """Creates the ServiceAccount `account` (namespace, name; the namespace must exist),
    binds it to `cluster_role`, gives it a FlowSchema named after it, and writes a
    kubeconfig for it."""
    namespace, name = account
    flow_schema = f"counted-{namespace}-{name}"
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
        {
            "metadata": {"name": flow_schema},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
    )
    everything = {
        "verbs": ["*"],
        "apiGroups": ["*"],
        "resources": ["*"],
        "clusterScope": True,
        "namespaces": ["*"],
    }
    subject = {"kind": "ServiceAccount", "serviceAccount": {"name": name, "namespace": namespace}}
    client.FlowcontrolApiserverV1Api(api).create_flow_schema(
        {
            "metadata": {"name": flow_schema},
            "spec": {
                # Ahead of the built-in schemas for service accounts (900 and 9000).
                "matchingPrecedence": 100,
                "priorityLevelConfiguration": {"name": "exempt"},
                "rules": [
                    {
                        "subjects": [subject],
                        "resourceRules": [everything],
                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    }
                ],
            },
        }
    )
    token = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": TOKEN_SECONDS}}
    ).status.token
    ca = base64.b64encode(ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority-data": ca}}
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}],
        "current-context": name,
    }
    kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
    kubeconfig.chmod(0o600)
    return CountedClient(flow_schema, kubeconfig)


def dispatched_requests(api: client.ApiClient, flow_schema: str) -> float:
    """Requests the API server has dispatched for this FlowSchema since it started;
    `api` must be allowed to read /metrics (the admin client is)."""
    answer = api.call_api("/metrics", "GET", _preload_content=False, _return_http_data_only=True)
    if answer.status != 200:
        raise ProcessFailed(f"kube-apiserver /metrics answered {answer.status}")
    label = f'flow_schema="{flow_schema}"'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in answer.data.decode().splitlines()
        if line.startswith(DISPATCHED) and label in line
    )
