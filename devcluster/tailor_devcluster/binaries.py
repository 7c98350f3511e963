"""Finds the server binaries, building the pinned Go modules on first use.

hack/build-tools.sh builds each module under hack/tools/ once per pinned version
into ~/.cache/tailor/bin; later calls return the cached folder at once.
"""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GO_MODULES = ("kubernetes", "etcd", "kwok", "minio")
# A real node's binaries: built only when a real node is asked for (opt-in).
NODE_MODULES = ("containerd", "runc", "cni-plugins", "kubelet", "prometheus")


class MissingBinary(RuntimeError):
    """A binary cannot be found or built; the message says how to get it."""


def repo_root() -> Path:
    """The checkout this package runs from (it is installed in editable mode)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "hack" / "build-tools.sh").is_file():
            return parent
    raise MissingBinary(
        "cannot find hack/build-tools.sh above this package: install tailor from a checkout "
        "(pip install -e .)"
    )


def build_module(name: str) -> Path:
    """The cache folder holding the binaries of hack/tools/<name>, built if need be."""
    script = repo_root() / "hack" / "build-tools.sh"
    result = subprocess.run([str(script), name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MissingBinary(
            f"building hack/tools/{name} failed (exit {result.returncode}):\n"
            f"{result.stderr[-4000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    minio: Path
    prometheus: Path

    @classmethod
    def locate(cls) -> "Binaries":
        folders = {name: build_module(name) for name in GO_MODULES}
        prometheus = shutil.which("prometheus")
        if prometheus is None:
            raise MissingBinary(
                "prometheus is not on PATH: install Debian's package (apt-get install prometheus)"
            )
        kube = folders["kubernetes"]
        found = cls(
            kube_apiserver=kube / "kube-apiserver",
            kube_controller_manager=kube / "kube-controller-manager",
            kube_scheduler=kube / "kube-scheduler",
            kubectl=kube / "kubectl",
            etcd=folders["etcd"] / "etcd",
            kwok=folders["kwok"] / "kwok",
            minio=folders["minio"] / "minio",
            prometheus=Path(prometheus),
        )
        for path in vars(found).values():
            if not Path(path).is_file():
                raise MissingBinary(f"expected binary {path} is missing; delete its cache folder")
        return found


@dataclass(frozen=True)
class NodeBinaries:
    """What a real node runs: containerd (with its runc shim and ctr), runc, the CNI
    plugins (a folder containerd is pointed at), the kubelet and kube-proxy; and a
    Prometheus with Kubernetes service discovery (Debian's is built without it), which
    scrapes the pods on the node the way a cluster's Prometheus finds them."""

    containerd: Path
    ctr: Path
    runc: Path
    cni_dir: Path
    kubelet: Path
    kube_proxy: Path
    prometheus: Path

    @classmethod
    def locate(cls) -> "NodeBinaries":
        folders = {name: build_module(name) for name in NODE_MODULES}
        found = cls(
            containerd=folders["containerd"] / "containerd",
            ctr=folders["containerd"] / "ctr",
            runc=folders["runc"] / "runc",
            cni_dir=folders["cni-plugins"],
            kubelet=folders["kubelet"] / "kubelet",
            kube_proxy=folders["kubelet"] / "kube-proxy",
            prometheus=folders["prometheus"] / "prometheus",
        )
        for binary in (
            found.containerd,
            found.ctr,
            found.containerd.parent / "containerd-shim-runc-v2",
            found.runc,
            found.cni_dir / "bridge",
            found.cni_dir / "host-local",
            found.cni_dir / "loopback",
            found.cni_dir / "portmap",
            found.kubelet,
            found.kube_proxy,
            found.prometheus,
        ):
            if not binary.is_file():
                raise MissingBinary(f"expected binary {binary} is missing; delete its cache folder")
        return found

    def search_path(self) -> str:
        """PATH for containerd: it finds its shim and runc there."""
        return f"{self.containerd.parent}:{self.runc.parent}"
