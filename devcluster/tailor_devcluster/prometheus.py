"""A Prometheus server with a generated scrape configuration.

Targets are read from a file-based service discovery file, so tests and the
operator's runner can add a target while Prometheus runs (it watches the file).
A ServiceMonitor (the Prometheus Operator's resource, which the chart ships) becomes a
scrape job that discovers its Service's endpoints through the API server, as the
Prometheus Operator would configure it; Prometheus then reloads its configuration.
"""

import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tailor_devcluster.binaries import Binaries
from tailor_devcluster.ports import free_port
from tailor_devcluster.processes import Supervisor, answers_ok, wait_until

SCRAPE_INTERVAL = "1s"


@dataclass
class PrometheusServer:
    url: str
    targets_file: Path
    config_file: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def scrape_service_monitor(self, monitor: Mapping[str, Any], kubeconfig: Path) -> None:
        """Scrape what `monitor` (a ServiceMonitor object) selects from now on, found
        through the API server `kubeconfig` reaches; reloads Prometheus."""
        with self._lock:
            config = yaml.safe_load(self.config_file.read_text())
            config["scrape_configs"] += service_monitor_jobs(monitor, kubeconfig)
            _replace(self.config_file, yaml.safe_dump(config))
            request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
            with urllib.request.urlopen(request, timeout=10) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"prometheus refused the reload: {answer.status}")

    def add_target(self, address: str, job: str, labels: dict[str, str] | None = None) -> None:
        """Scrape `address` (host:port) under `job` from now on."""
        with self._lock:
            groups: list[dict[str, Any]] = json.loads(self.targets_file.read_text())
            groups.append({"targets": [address], "labels": {"job": job, **(labels or {})}})
            _replace(self.targets_file, json.dumps(groups, indent=1))

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"PromQL query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def active_targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as response:
            targets: list[dict[str, Any]] = json.load(response)["data"]["activeTargets"]
            return targets


def _replace(path: Path, text: str) -> None:
    """Write-then-rename: Prometheus must never read a half-written file."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


def _label_name(key: str) -> str:
    """A Kubernetes label key as Prometheus's discovery spells it in meta labels."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def service_monitor_jobs(monitor: Mapping[str, Any], kubeconfig: Path) -> list[dict[str, Any]]:
    """One scrape job per endpoint of a ServiceMonitor: its Services' endpoint slices
    in the namespaces it selects, kept by the Service's labels (matchLabels) and the
    port's name, with the namespace, pod and service as labels and the Service's name
    as the job (what the Prometheus Operator generates for the same object)."""
    metadata, spec = monitor["metadata"], monitor["spec"]
    namespaces = (spec.get("namespaceSelector") or {}).get("matchNames") or [metadata["namespace"]]
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if set(spec.get("selector") or {}) - {"matchLabels"}:
        raise ValueError("only a ServiceMonitor's selector.matchLabels is supported here")
    keep_service = [
        {
            "source_labels": [f"__meta_kubernetes_service_label_{_label_name(key)}"],
            "regex": re.escape(str(value)),
            "action": "keep",
        }
        for key, value in sorted(selector.items())
    ]
    jobs = []
    for index, endpoint in enumerate(spec["endpoints"]):
        job: dict[str, Any] = {
            "job_name": f"serviceMonitor/{metadata['namespace']}/{metadata['name']}/{index}",
            "metrics_path": endpoint.get("path", "/metrics"),
            "kubernetes_sd_configs": [
                {
                    "role": "endpointslice",
                    "kubeconfig_file": str(kubeconfig),
                    "namespaces": {"names": list(namespaces)},
                }
            ],
            "relabel_configs": [
                *keep_service,
                {
                    "source_labels": ["__meta_kubernetes_endpointslice_port_name"],
                    "regex": re.escape(endpoint["port"]),
                    "action": "keep",
                },
                *(
                    {"source_labels": [f"__meta_kubernetes_{meta}"], "target_label": label}
                    for meta, label in (
                        ("namespace", "namespace"),
                        ("pod_name", "pod"),
                        ("service_name", "service"),
                        ("service_name", "job"),
                    )
                ),
            ],
        }
        for key, name in (("interval", "scrape_interval"), ("scrapeTimeout", "scrape_timeout")):
            if key in endpoint:
                job[name] = endpoint[key]
        if endpoint.get("honorLabels"):
            job["honor_labels"] = True
        jobs.append(job)
    return jobs


def start_prometheus(
    supervisor: Supervisor, binaries: Binaries, state_dir: Path
) -> PrometheusServer:
    state_dir.mkdir(parents=True, exist_ok=True)
    targets = state_dir / "targets.json"
    targets.write_text("[]")
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "tailor",
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
            }
        ],
    }
    config_file = state_dir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = supervisor.start(
        "prometheus",
        [
            str(binaries.prometheus),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={state_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",  # /-/reload, for ServiceMonitors added later
            "--log.level=warn",
        ],
    )
    wait_until("prometheus /-/ready", lambda: answers_ok(f"{url}/-/ready"), 30, [process])
    return PrometheusServer(url=url, targets_file=targets, config_file=config_file)
