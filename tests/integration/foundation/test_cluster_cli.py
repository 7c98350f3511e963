"""`make cluster-up` / `make cluster-down`: the background cluster a developer uses."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tailor_devcluster.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def tailor_cluster(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor_devcluster.cli", "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_up_writes_the_connection_details_and_down_stops_every_process(tmp_path):
    state = tmp_path / "state"
    up = tailor_cluster(state, "up", "--gpu-nodes", "2")
    try:
        assert up.returncode == 0, up.stderr
        env_file = state / "cluster.env"
        variables = dict(
            line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines()
        )
        assert set(variables) >= {
            "KUBECONFIG",
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "PROMETHEUS_URL",
        }
        assert "KUBECONFIG=" in up.stdout  # printed for the developer too
        # The kubeconfig really reaches the API server, which sees the GPU nodes.
        from tailor_devcluster.binaries import Binaries

        kubectl = Binaries.locate().kubectl
        nodes = subprocess.run(
            [str(kubectl), "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": variables["KUBECONFIG"]},
            check=True,
        ).stdout.split()
        assert nodes == ["node/gpu-node-0", "node/gpu-node-1"]
        # A second `up` reports the running cluster rather than starting another.
        again = tailor_cluster(state, "up")
        assert "already running" in again.stdout
        assert len(processes_mentioning(str(state))) >= 8  # supervisor + 7 servers
    finally:
        down = tailor_cluster(state, "down")
    assert down.returncode == 0, down.stderr
    eventually("every server stopped", lambda: processes_mentioning(str(state)) == [], timeout=30)
    assert not (state / "cluster.env").exists()


def test_killed_supervisor_takes_its_servers_along(tmp_path):
    state = tmp_path / "state"
    up = tailor_cluster(state, "up", "--gpu-nodes", "1")
    assert up.returncode == 0, up.stderr
    supervisor = int((state / "cluster.pid").read_text())
    os.kill(supervisor, 9)
    eventually(
        "servers gone after SIGKILL of their parent",
        lambda: processes_mentioning(str(state)) == [],
        timeout=30,
    )
