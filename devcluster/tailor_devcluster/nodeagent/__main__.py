"""python -m tailor_devcluster.nodeagent: run the node agent until SIGTERM or SIGINT.

LocalCluster starts it this way (ClusterSettings.agent_slots, `tailor-cluster up
--agent-slots N`); it can also join any cluster it has a kubeconfig for.
"""

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from tailor_devcluster.nodeagent.agent import AgentSettings, NodeAgent
from tailor_devcluster.nodeagent.capacity import detect_devices
from tailor_devcluster.nodeagent.kubeapi import NodeApi, api_client

log = logging.getLogger("tailor_devcluster.nodeagent")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tailor_devcluster.nodeagent", description=__doc__
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True, help="pod folders, logs and run records")
    parser.add_argument("--node-name", default="tailor-agent")
    parser.add_argument(
        "--cpu-slots", type=int, default=1, help='CPU-backed "GPU" slots when no CUDA device'
    )
    parser.add_argument(
        "--no-cuda", action="store_true", help="offer CPU slots even where CUDA devices exist"
    )
    parser.add_argument(
        "--bin-dir",
        default=str(Path(sys.executable).parent),
        help="where container commands are found first (default: this Python's bin folder)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    arguments = _parser().parse_args(argv)
    stop = False

    def request_stop(number: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    settings = AgentSettings(
        node_name=arguments.node_name,
        state_dir=Path(arguments.state_dir).resolve(),
        bin_dir=Path(arguments.bin_dir).resolve(),
    )
    devices = detect_devices(arguments.cpu_slots, use_cuda=not arguments.no_cuda)
    api = NodeApi(api_client(arguments.kubeconfig), settings.node_name)
    agent = NodeAgent(api, settings, devices)
    while not stop:
        try:
            agent.register()
            break
        except Exception:  # the API server still starting: try again
            log.exception("cannot register the node yet")
            time.sleep(1)
    try:
        while not stop:
            began = time.monotonic()
            try:
                agent.tick()
            except Exception:  # the API server restarting, a timeout: try again
                log.exception("node agent tick failed")
            time.sleep(max(0.0, settings.poll_seconds - (time.monotonic() - began)))
    finally:
        agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
