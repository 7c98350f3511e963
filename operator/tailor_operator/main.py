"""tailor-operator: runs the operator against $KUBECONFIG (or in-cluster config)."""

import argparse
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import kopf
import prometheus_client

from tailor_operator import handlers
from tailor_operator.kube import Kube, api_client_from_environment
from tailor_operator.metrics import Metrics
from tailor_operator.reconciler import Key, Reconciler
from tailor_operator.settings import SettingsError, load_settings, start_priority
from tailor_operator.workqueue import WorkQueue


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tailor-operator",
        description="Runs the Tailor operator. Settings come from TAILOR_* variables "
        "(see docs/operator.md); the cluster from $KUBECONFIG or the pod's service account.",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; default: TAILOR_NAMESPACES, else all)",
    )
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as error:
        print(f"tailor-operator: {error}", file=sys.stderr)
        return 2
    namespaces = tuple(args.namespace) or settings.namespaces
    api = api_client_from_environment(pool_size=settings.workers * 2)
    metrics = Metrics(prometheus_client.REGISTRY)
    prometheus_client.start_http_server(settings.metrics_port)
    reconciler = Reconciler(
        Kube(api, settings.calibration, calibration_ttl_seconds=settings.cache_seconds),
        settings,
        metrics,
    )
    queue: WorkQueue[Key] = WorkQueue(
        reconciler, workers=settings.workers, executor=ThreadPoolExecutor(settings.workers)
    )
    handlers.install(
        handlers.Runtime(queue=queue, metrics=metrics, own_writes=reconciler.own_writes)
    )
    kopf.configure(verbose=args.verbose)
    if not args.verbose:
        # One line per watch event and per health probe drowns what matters at scale.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    operator_settings = kopf.OperatorSettings()
    # The namespaces and the one CRD are known: no cluster-wide watching of namespaces
    # and CRDs, which least-privilege RBAC (charts/tailor) does not grant.
    operator_settings.scanning.disabled = True
    priority = settings.peering_priority
    kopf.run(
        settings=operator_settings,
        # Peering when named: replicas share one peering object; the highest priority works.
        standalone=settings.peering_name is None,
        peering_name=settings.peering_name,
        priority=start_priority(time.time_ns()) if priority is None else priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
