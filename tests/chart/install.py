"""A real `helm install` into a local control plane, and the operator run as its
ServiceAccount: what the chart grants is exactly what the operator gets."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tailor_devcluster.cluster import LocalCluster
from tests.chart.tools import CHART, helm
from tests.integration.operator.process import OperatorProcess

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def create_restricted_namespace(kube: LocalCluster, name: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": RESTRICTED},
    }
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


@dataclass
class Release:
    kube: LocalCluster
    name: str
    namespace: str
    values: dict[str, Any]
    workdir: Path
    team: str = ""  # where the tests put their TrainingJobs
    operators: list[OperatorProcess] = field(default_factory=list)

    @property
    def fullname(self) -> str:
        return self.name if "tailor" in self.name else f"{self.name}-tailor"

    def get(self, *what: str, namespace: str | None = None) -> dict[str, Any]:
        out = self.kube.kubectl("get", *what, "-n", namespace or self.namespace, "-o", "json")
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def service_account_kubeconfig(self) -> Path:
        """A kubeconfig that authenticates as the chart's ServiceAccount, nothing more."""
        token = self.kube.kubectl(
            "create", "token", self.fullname, "-n", self.namespace, "--duration=2h"
        ).stdout.strip()
        admin = yaml.safe_load(self.kube.kubeconfig.read_text())
        cluster = admin["clusters"][0]["cluster"]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": cluster}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
            "current-context": "operator",
        }
        path = self.workdir / f"{self.name}-operator.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    def operator_env(self) -> dict[str, str]:
        """The operator container's environment as installed (values, not references)."""
        deployment = self.get("deployment", self.fullname)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        for port in ("TAILOR_METRICS_PORT", "TAILOR_HEALTH_PORT"):
            env.pop(port)  # each local process gets free ports of its own
        return env

    def start_operator(self, pod_id: str) -> OperatorProcess:
        """One replica, as the Deployment would run it, as a local process."""
        env = self.operator_env()
        process = OperatorProcess(
            self.service_account_kubeconfig(),
            self.workdir / f"{pod_id}.log",
            env.pop("TAILOR_CALIBRATION_CONFIGMAP"),
            extra={**env, "POD_ID": pod_id},
        )
        process.start()
        self.operators.append(process)
        return process

    def stop_operators(self) -> None:
        for process in self.operators:
            process.stop()


@contextmanager
def installed(
    kube: LocalCluster, name: str, namespace: str, values: dict[str, Any], workdir: Path
) -> Iterator[Release]:
    values_file = workdir / f"{name}-values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    create_restricted_namespace(kube, namespace)
    for watched in values.get("watchNamespaces", []):
        create_restricted_namespace(kube, watched)
    helm(
        "install", name, CHART, "--namespace", namespace, "--values", values_file,
        "--wait", "--timeout", "120s",
        kubeconfig=kube.kubeconfig,
    )  # fmt: skip
    release = Release(kube, name, namespace, values, workdir)
    try:
        yield release
    finally:
        release.stop_operators()
        helm("uninstall", name, "--namespace", namespace, "--wait", kubeconfig=kube.kubeconfig)
