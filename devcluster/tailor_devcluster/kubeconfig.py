"""The kubeconfig the local cluster writes for its clients."""

import base64
from pathlib import Path

import yaml

from tailor_devcluster.pki import ClusterPki

CLUSTER_NAME = "tailor-local"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path,
    server: str,
    pki: ClusterPki,
    user: str = "tailor-admin",
    cert: Path | None = None,
    key: Path | None = None,
) -> None:
    """A self-contained kubeconfig (certificates embedded) for the admin user, or for
    `user` with the client certificate `cert` and its `key`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority-data": _b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(cert or pki.admin_cert),
                    "client-key-data": _b64(key or pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": CLUSTER_NAME,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
