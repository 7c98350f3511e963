"""What a real node changes on the machine, recorded before it starts and undone after.

The kubelet and containerd write outside the cluster's state folder: three sysctls,
a few fixed paths, cgroups, iptables chains; the node itself adds a network bridge.
`HostRecord.take` writes what was there before to a JSON file; `restore` puts it back
and removes what was added, and works from that file alone, so `tailor-cluster down`
can restore after a supervisor that was SIGKILLed.
"""

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The kubelet sets these at start (its "protect kernel defaults" values).
KUBELET_SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")
# kube-proxy's conntrack settings: configured to leave them (kubeproxy.py), recorded in
# case it does not. Present only while the kernel's conntrack is loaded.
KUBE_PROXY_SYSCTLS = (
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
)
# Paths the kubelet, containerd and the CNI plugins use whatever their configuration says.
FIXED_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/cni",
    "/run/containerd",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
IPTABLES_TABLES = ("filter", "nat", "mangle")
IPTABLES_COMMANDS = ("iptables", "ip6tables")


def read_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value + "\n")


def node_sysctls() -> list[str]:
    """The sysctls a real node may write, of those this kernel has."""
    names = (*KUBELET_SYSCTLS, *KUBE_PROXY_SYSCTLS)
    return [name for name in names if Path("/proc/sys", *name.split(".")).is_file()]


def cgroup_hierarchies(unified: bool = False) -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, memory, ..., name=systemd); with
    `unified`, the cgroup2 mount too (the kubelet creates its cgroupRoot there as well
    on a hybrid machine like ours)."""
    kinds = ("cgroup", "cgroup2") if unified else ("cgroup",)
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] in kinds:
            found.append(Path(fields[1]))
    return found


def iptables_rules() -> dict[str, list[str]]:
    """Per "iptables/<table>" and "ip6tables/<table>", the chain declarations and rules
    as iptables-save writes them (the kubelet writes both families)."""
    rules: dict[str, list[str]] = {}
    for command in IPTABLES_COMMANDS:
        if shutil.which(f"{command}-save") is None:
            continue
        for table in IPTABLES_TABLES:
            result = subprocess.run(
                [f"{command}-save", "-t", table], capture_output=True, text=True, check=False
            )
            lines = [
                line
                for line in result.stdout.splitlines()
                if line.startswith((":", "-A ")) and not line.startswith("#")
            ]
            # Chain declarations carry packet counters: keep the name and policy only.
            rules[f"{command}/{table}"] = [
                " ".join(line.split()[:2]) if line.startswith(":") else line for line in lines
            ]
    return rules


def nft_tables() -> list[str]:
    """The nftables tables ("ip filter", ...): iptables-nft creates the ones it touches."""
    if shutil.which("nft") is None:
        return []
    result = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return [line.removeprefix("table ").strip() for line in result.stdout.splitlines() if line]


@dataclass
class HostRecord:
    """The machine's state before a real node started, and what the node adds."""

    sysctls: dict[str, str]
    existing_paths: list[str]
    iptables: dict[str, list[str]]
    cgroup_name: str
    bridge: str
    nft_tables: list[str] = field(default_factory=list)
    created_paths: list[str] = field(default_factory=list)

    @classmethod
    def take(cls, cgroup_name: str, bridge: str) -> "HostRecord":
        return cls(
            sysctls={name: read_sysctl(name) for name in node_sysctls()},
            existing_paths=[path for path in FIXED_PATHS if os.path.lexists(path)],
            iptables=iptables_rules(),
            cgroup_name=cgroup_name,
            bridge=bridge,
            nft_tables=nft_tables(),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "HostRecord":
        return cls(**json.loads(path.read_text()))

    def differences(self) -> list[str]:
        """What differs from the record now; empty once `restore` succeeded."""
        found = []
        for name, value in self.sysctls.items():
            if read_sysctl(name) != value:
                found.append(f"sysctl {name} is {read_sysctl(name)}, was {value}")
        for path in FIXED_PATHS:
            if os.path.lexists(path) and path not in self.existing_paths:
                found.append(f"{path} exists")
        for hierarchy in cgroup_hierarchies(unified=True):
            if (hierarchy / self.cgroup_name).exists():
                found.append(f"cgroup {hierarchy / self.cgroup_name} exists")
        if Path("/sys/class/net", self.bridge).exists():
            found.append(f"network link {self.bridge} exists")
        now = iptables_rules()
        for key, lines in now.items():
            command, table = key.split("/")
            for line in lines:
                if line not in self.iptables.get(key, []):
                    found.append(f"{command} -t {table}: {line}")
        for table in nft_tables():
            if table not in self.nft_tables:
                found.append(f"nft table {table}")
        return found

    def restore(self) -> list[str]:
        """Undoes the node's changes; returns what could not be undone."""
        for name, value in self.sysctls.items():
            with contextlib.suppress(OSError):
                if read_sysctl(name) != value:
                    write_sysctl(name, value)
        for path in FIXED_PATHS:
            if path not in self.existing_paths and os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)
        for hierarchy in cgroup_hierarchies(unified=True):
            _remove_cgroup_tree(hierarchy / self.cgroup_name)
        if Path("/sys/class/net", self.bridge).exists():
            subprocess.run(["ip", "link", "delete", self.bridge], check=False)
        self._restore_iptables()
        return self.differences()

    def _restore_iptables(self) -> None:
        for key, lines in iptables_rules().items():
            command, table = key.split("/")
            before = self.iptables.get(key, [])
            added_rules = [line for line in lines if line.startswith("-A ") and line not in before]
            added_chains = [
                line.split()[0][1:] for line in lines if line.startswith(":") and line not in before
            ]
            base = [command, "-w", "-t", table]
            for rule in added_rules:
                argv = [*base, "-D", *shlex.split(rule)[1:]]
                subprocess.run(argv, capture_output=True, check=False)
            for chain in added_chains:
                subprocess.run([*base, "-F", chain], capture_output=True, check=False)
            for chain in added_chains:
                subprocess.run([*base, "-X", chain], capture_output=True, check=False)
        # Tables iptables-nft created for the node (there were none before it).
        for table in nft_tables():
            if table not in self.nft_tables:
                family, name = table.split()
                subprocess.run(
                    ["nft", "delete", "table", family, name], capture_output=True, check=False
                )


def _remove_cgroup_tree(path: Path, timeout: float = 10.0) -> None:
    """rmdir a cgroup and its children, deepest first (a cgroup dir holds only
    kernel files, which rmdir ignores); waits for dying processes to leave."""
    if not path.is_dir():
        return
    deadline = time.monotonic() + timeout
    while True:
        children = sorted(
            (Path(root) for root, _, _ in os.walk(path)), key=lambda p: len(p.parts), reverse=True
        )
        failed = False
        for child in children:
            try:
                child.rmdir()
            except OSError:
                failed = True
        if not failed or time.monotonic() > deadline:
            return
        time.sleep(0.2)
