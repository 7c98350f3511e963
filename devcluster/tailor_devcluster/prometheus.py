"""A Prometheus server with a generated scrape configuration.

Targets are read from a file-based service discovery file, so tests and the
operator's runner can add a target while Prometheus runs (it watches the file).
"""

import json
import threading
import urllib.parse
import urllib.request
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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_target(self, address: str, job: str, labels: dict[str, str] | None = None) -> None:
        """Scrape `address` (host:port) under `job` from now on."""
        with self._lock:
            groups: list[dict[str, Any]] = json.loads(self.targets_file.read_text())
            groups.append({"targets": [address], "labels": {"job": job, **(labels or {})}})
            # Write-then-rename: Prometheus must never read a half-written file.
            partial = self.targets_file.with_suffix(".partial")
            partial.write_text(json.dumps(groups, indent=1))
            partial.replace(self.targets_file)

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
            "--log.level=warn",
        ],
    )
    wait_until("prometheus /-/ready", lambda: answers_ok(f"{url}/-/ready"), 30, [process])
    return PrometheusServer(url=url, targets_file=targets)
