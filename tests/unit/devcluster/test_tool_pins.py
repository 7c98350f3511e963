"""The pinned Go tools stay consistent with what they claim to be."""

import re
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[3] / "hack" / "tools"


def required_version(module: str, path: str) -> str:
    text = (TOOLS / module / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(path)} (v\S+)", text, re.M)
    assert found, f"{path} is not required by hack/tools/{module}/go.mod"
    return found.group(1)


def test_kubernetes_binaries_are_stamped_with_the_pinned_release():
    version = required_version("kubernetes", "k8s.io/kubernetes")
    flags = (TOOLS / "kubernetes" / "ldflags").read_text()
    stamped = set(re.findall(r"version\.gitVersion=(\S+)", flags))
    assert stamped == {version}
    major, minor = version.removeprefix("v").split(".")[:2]
    assert f"gitMajor={major}" in flags
    assert f"gitMinor={minor}" in flags


def test_staging_modules_are_replaced_by_the_matching_published_release():
    version = required_version("kubernetes", "k8s.io/kubernetes")
    staging = "v0." + version.removeprefix("v1.")
    replaced = re.findall(
        r"^\s*(k8s\.io/\S+) => \1 (v\S+)$", (TOOLS / "kubernetes" / "go.mod").read_text(), re.M
    )
    assert len(replaced) > 25
    assert {v for _, v in replaced} == {staging}
