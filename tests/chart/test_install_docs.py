"""docs/install.md's "Install on a cluster" commands, pasted into bash against a local
control plane: the README's install section works as written."""

import os
import re
import subprocess

import pytest

from tailor_devcluster.cluster import LocalCluster
from tests.chart.tools import ROOT, helm_binary

pytestmark = pytest.mark.integration

INSTALL_DOC = ROOT / "docs" / "install.md"


def install_commands() -> str:
    section = INSTALL_DOC.read_text().split("## Install on a cluster", 1)[1]
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", section.split("\n### ", 1)[0], re.DOTALL)
    (block,) = blocks
    return block


def test_the_install_commands_work_as_written(chart_cluster: LocalCluster) -> None:
    assert chart_cluster.binaries is not None
    tools = f"{helm_binary().parent}:{chart_cluster.binaries.kubectl.parent}"
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    env["KUBECONFIG"] = str(chart_cluster.kubeconfig)
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", install_commands()],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:  # the cluster is shared with test_install.py: leave it as found
        subprocess.run(
            [str(helm_binary()), "uninstall", "tailor", "-n", "tailor-system", "--wait"],
            env=env,
            capture_output=True,
            check=False,
        )
        chart_cluster.kubectl("delete", "namespace", "tailor-system", "team-a", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trainingjob.tailor.dev/flowers created" in result.stdout
    assert re.search(r"tailor\s+2/2", result.stdout), result.stdout  # both replicas ready
    assert "secret/s3-credentials created" in result.stdout
