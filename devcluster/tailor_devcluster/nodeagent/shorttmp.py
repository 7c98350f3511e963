"""A short TMPDIR for each pod.

A container's /tmp is a short path; here a pod's /tmp volume lies deep under the
agent's state folder, and a Unix socket's path may not exceed 107 bytes. Python's
multiprocessing makes its sockets under TMPDIR (PyTorch's data loader workers pass
tensors through one), and a path too long for them hangs the trainer. So a pod whose
TMPDIR is long gets a short link to it instead.
"""

from collections.abc import MutableMapping
from pathlib import Path

ROOT = Path("/tmp/tailor-agent")
# Longest TMPDIR kept as it is: multiprocessing adds pymp-XXXXXXXX/listener-XXXXXXXX.
LONGEST = 48


def link_for(uid: str) -> Path:
    return ROOT / uid.replace("-", "")[:16]


def shorten_tmpdir(env: MutableMapping[str, str], uid: str) -> None:
    """Points a long TMPDIR at a short link to the same folder."""
    target = env.get("TMPDIR")
    if not target or len(target) <= LONGEST or not uid:
        return
    link = link_for(uid)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():  # left by an earlier start of this pod
        link.unlink()
    link.symlink_to(target, target_is_directory=True)
    env["TMPDIR"] = str(link)


def remove_link(uid: str) -> None:
    link_for(uid).unlink(missing_ok=True)
