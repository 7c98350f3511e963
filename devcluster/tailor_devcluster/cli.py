"""`tailor-cluster`: run the local cluster in the background for development.

tailor-cluster up      start it (or report the one running) and print its variables
                       (--real-nodes 1: with a real node, containerd, runc and a kubelet,
                       which run pods for real; root)
tailor-cluster down    stop every process it started (and restore what a real node changed)
tailor-cluster env     print the variables of the running cluster
tailor-cluster images  build a real node's images with buildah (cached by their inputs;
                       --trainer: the trainer image too, about 6 GB)
"""

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tailor_devcluster.cluster import ClusterSettings, LocalCluster
from tailor_devcluster.images import build_all
from tailor_devcluster.realnode import restore_host

ENV_FILE = "cluster.env"
PID_FILE = "cluster.pid"
FAILED_FILE = "cluster.failed"


def _state_dir(arguments: argparse.Namespace) -> Path:
    return Path(arguments.state_dir).resolve()


def _running_pid(state: Path) -> int | None:
    try:
        pid = int((state / PID_FILE).read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _serve(arguments: argparse.Namespace) -> int:
    """The background supervisor: owns the servers until SIGTERM."""
    state = _state_dir(arguments)
    stop = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # A real node of an earlier cluster that was killed may have left the machine changed.
    restore_host(state / "run" / "realnode")
    # Each `up` is a fresh cluster: old etcd data would not match the new certificates.
    shutil.rmtree(state / "run", ignore_errors=True)
    settings = ClusterSettings(
        state_dir=state / "run",
        gpu_nodes=arguments.gpu_nodes,
        real_nodes=arguments.real_nodes,
        real_node_trainer=arguments.trainer_image,
    )
    cluster = LocalCluster(settings)
    try:
        cluster.start()
    except Exception as error:
        (state / FAILED_FILE).write_text(f"{error}\n")
        return 1
    try:
        cluster.write_env_file(state / ENV_FILE)
        print(f"local cluster ready in {cluster.startup_seconds:.1f}s", flush=True)
        for node in cluster.real_nodes:
            print(f"real node {node.spec.name} ready in {node.ready_seconds:.1f}s", flush=True)
        while not stop:
            time.sleep(0.5)
            cluster.supervisor.check_all_alive()
    finally:
        cluster.stop()
        with contextlib.suppress(FileNotFoundError):
            (state / ENV_FILE).unlink()
        for left in cluster.host_left:
            print(f"real node: not restored: {left}", flush=True)
    return 0


def _up(arguments: argparse.Namespace) -> int:
    state = _state_dir(arguments)
    state.mkdir(parents=True, exist_ok=True)
    if _running_pid(state) is not None and (state / ENV_FILE).exists():
        print(f"# the local cluster is already running ({state / ENV_FILE})")
        print((state / ENV_FILE).read_text(), end="")
        return 0
    for stale in (ENV_FILE, FAILED_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state / stale).unlink()
    began = time.monotonic()
    log = (state / "cluster.log").open("ab")
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tailor_devcluster.cli",
            "--state-dir",
            str(state),
            "serve",
            "--gpu-nodes",
            str(arguments.gpu_nodes),
            "--real-nodes",
            str(arguments.real_nodes),
            *(["--trainer-image"] if arguments.trainer_image else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # outlives this command and the terminal
    )
    (state / PID_FILE).write_text(str(daemon.pid))
    while not (state / ENV_FILE).exists():
        if daemon.poll() is not None:
            reason = (state / FAILED_FILE).read_text() if (state / FAILED_FILE).exists() else ""
            print(
                f"tailor-cluster: the local cluster failed to start:\n{reason}"
                f"logs: {state / 'run' / 'logs'} and {state / 'cluster.log'}",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.2)
    print(
        f"# local cluster up in {time.monotonic() - began:.1f}s; "
        f"logs in {state / 'run' / 'logs'}; stop it with `make cluster-down`"
    )
    print(f"# load these variables with: source {state / ENV_FILE}")
    print((state / ENV_FILE).read_text(), end="")
    return 0


def _down(arguments: argparse.Namespace) -> int:
    state = _state_dir(arguments)
    pid = _running_pid(state)
    if pid is None:
        print("tailor-cluster: no local cluster is running")
        left = restore_host(state / "run" / "realnode")
        for item in left:
            print(f"tailor-cluster: not restored: {item}", file=sys.stderr)
        return 1 if left else 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _running_pid(state) == pid:
        time.sleep(0.2)
    if _running_pid(state) == pid:
        # Its children follow it: each asked the kernel to kill it at its parent's death.
        os.kill(pid, signal.SIGKILL)
    for stale in (PID_FILE, ENV_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state / stale).unlink()
    # The supervisor restores what a real node changed; if it was killed, do it here.
    left = restore_host(state / "run" / "realnode")
    for item in left:
        print(f"tailor-cluster: not restored: {item}", file=sys.stderr)
    print("tailor-cluster: stopped")
    return 1 if left else 0


def _env(arguments: argparse.Namespace) -> int:
    env_file = _state_dir(arguments) / ENV_FILE
    if not env_file.exists():
        print("tailor-cluster: no local cluster is running (make cluster-up)", file=sys.stderr)
        return 1
    print(env_file.read_text(), end="")
    return 0


def _images(arguments: argparse.Namespace) -> int:
    return build_all(trainer=arguments.trainer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tailor-cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("TAILOR_STATE_DIR", ".tailor"),
        help="where the cluster keeps its data, logs and cluster.env",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the local cluster in the background")
    up.add_argument("--gpu-nodes", type=int, default=4, help="simulated GPU nodes (default 4)")
    up.add_argument(
        "--real-nodes",
        type=int,
        default=0,
        choices=(0, 1),
        help="also run a real node: containerd, runc and a kubelet on this machine, with the "
        "operator image loaded (needs root; see docs/demo.md); default 0",
    )
    up.add_argument(
        "--trainer-image",
        action="store_true",
        help="with --real-nodes 1: load the trainer image too (about 6 GB; `tailor-cluster "
        "images --trainer` builds it)",
    )
    serve = commands.add_parser("serve", help=argparse.SUPPRESS)
    serve.add_argument("--gpu-nodes", type=int, default=4)
    serve.add_argument("--real-nodes", type=int, default=0)
    serve.add_argument("--trainer-image", action="store_true")
    commands.add_parser("down", help="stop the local cluster")
    commands.add_parser("env", help="print the running cluster's variables")
    images = commands.add_parser("images", help="build a real node's images (buildah; cached)")
    images.add_argument(
        "--trainer",
        action="store_true",
        help="also the trainer image (about 6 GB; stops before the disk has under "
        "TAILOR_DISK_FLOOR_GIB, default 12, free)",
    )
    arguments = parser.parse_args(argv)
    handlers = {
        "up": _up,
        "serve": _serve,
        "down": _down,
        "env": _env,
        "images": _images,
    }
    return handlers[arguments.command](arguments)


if __name__ == "__main__":
    sys.exit(main())
