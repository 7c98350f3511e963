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


def test_the_kubelet_is_the_control_planes_release():
    # A real node's kubelet must not be newer than its API server (version skew).
    assert required_version("kubelet", "k8s.io/kubernetes") == required_version(
        "kubernetes", "k8s.io/kubernetes"
    )
    assert (TOOLS / "kubelet" / "ldflags").read_text() == (
        TOOLS / "kubernetes" / "ldflags"
    ).read_text()


def test_the_node_runtimes_are_pinned_to_the_versions_known_to_work_here():
    # containerd 1.x is end of life and the 1.37 kubelet's fallback for it goes in 1.38;
    # runc 1.5 and the CNI plugins 1.10 are what was measured on these machines.
    assert required_version("containerd", "github.com/containerd/containerd/v2").startswith("v2.4.")
    assert required_version("runc", "github.com/opencontainers/runc").startswith("v1.5.")
    assert required_version("cni-plugins", "github.com/containernetworking/plugins").startswith(
        "v1.10."
    )
    # runc is the one cgo build: seccomp through Debian's libseccomp, no libpathrs.
    assert "libseccomp-dev" in (TOOLS / "runc" / "cgo").read_text()
    tags = (TOOLS / "runc" / "tags").read_text().split("\n")
    assert [line for line in tags if line and not line.startswith("#")] == [
        "seccomp urfave_cli_no_docs"
    ]
