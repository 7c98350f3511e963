"""The command-line tools the chart tests drive: helm, kstatus, promtool, lua, hadolint.

helm and kstatus are built from their pinned Go modules (hack/tools/) on first use and
cached like the cluster's binaries; promtool comes with Debian's prometheus package,
lua5.1 with Debian's lua5.1 (the Lua of Argo CD's gopher-lua).
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tailor_devcluster.binaries import build_module, repo_root

ROOT = repo_root()
CHART = ROOT / "charts" / "tailor"
VALUES = Path(__file__).parent / "values"
ARGOCD_CHECK = ROOT / "hack" / "argocd" / "tailor.dev" / "TrainingJob"


class ToolFailed(AssertionError):
    """A tool exited non-zero; the message carries its output."""


def run(args: list[str | Path], stdin: str | None = None, timeout: float = 120) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise ToolFailed(
            f"{' '.join(str(a) for a in args)} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def helm_binary() -> Path:
    return build_module("helm") / "helm"


def kstatus_binary() -> Path:
    return build_module("kstatus") / "kstatus"


def system_binary(name: str, package: str) -> Path:
    found = shutil.which(name)
    if found is None:
        raise ToolFailed(f"{name} is not on PATH: apt-get install {package}")
    return Path(found)


def helm(*args: str | Path, kubeconfig: Path | None = None, timeout: float = 180) -> str:
    env_args: list[str | Path] = [helm_binary(), *args]
    if kubeconfig is not None:
        env_args += ["--kubeconfig", kubeconfig]
    return run(env_args, timeout=timeout)


def render(
    values: Path | None = None,
    release: str = "tailor",
    namespace: str = "tailor-system",
    sets: tuple[str, ...] = (),
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """`helm template` of the chart: its objects as data."""
    args: list[str | Path] = ["template", release, CHART, "--namespace", namespace]
    if values is not None:
        args += ["--values", values]
    for item in sets:
        args += ["--set", item]
    if include_crds:
        args.append("--include-crds")
    return [d for d in yaml.safe_load_all(helm(*args)) if d]


def kinds(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = kinds(objects, kind)
    return found


def flux_health_check() -> dict[str, str]:
    """The CEL health check docs/gitops.md tells Flux users to put in their Kustomization."""
    text = (ROOT / "docs" / "gitops.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL):
        document = yaml.safe_load(block)
        if isinstance(document, dict) and document.get("kind") == "Kustomization":
            (check,) = document["spec"]["healthCheckExprs"]
            return check  # type: ignore[no-any-return]
    raise AssertionError("docs/gitops.md has no Kustomization with healthCheckExprs")


def kstatus(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What GitOps tools read from each object: `sigs` and `flux` (the two kstatus
    implementations) and `cel` (Flux's evaluator running the documented CEL check)."""
    check = flux_health_check()
    args: list[str | Path] = [kstatus_binary(), "-current", check["current"]]
    args += ["-failed", check["failed"]]
    if "inProgress" in check:
        args += ["-in-progress", check["inProgress"]]
    out = run(args, stdin="\n---\n".join(json.dumps(o) for o in objects))
    return [json.loads(line) for line in out.splitlines()]
