"""A MinIO server: the S3-compatible store of the local cluster."""

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailor_devcluster.binaries import Binaries
from tailor_devcluster.ports import free_port
from tailor_devcluster.processes import Supervisor, answers_ok, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = REGION

    def client(self, **config: Any) -> "S3Client":
        import boto3  # imported here: the control plane alone needs no boto3
        from botocore.config import Config

        client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, **config),
        )
        return client

    def environment(self) -> dict[str, str]:
        """What an S3 client (boto3, the AWS CLI, the trainer) reads from its environment."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }


def start_minio(
    supervisor: Supervisor, binaries: Binaries, data_dir: Path, address: str = "127.0.0.1"
) -> S3Endpoint:
    """MinIO on `address`: loopback, or a real node's bridge address so that the pods
    and this machine use one endpoint URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port, console_port = free_port(), free_port()
    endpoint = S3Endpoint(
        endpoint_url=f"http://{address}:{port}",
        access_key="tailor-" + secrets.token_hex(4),
        secret_key=secrets.token_urlsafe(24),
    )
    process = supervisor.start(
        "minio",
        [
            str(binaries.minio),
            "server",
            str(data_dir),
            f"--address={address}:{port}",
            f"--console-address=127.0.0.1:{console_port}",
            "--quiet",
        ],
        env={
            "MINIO_ROOT_USER": endpoint.access_key,
            "MINIO_ROOT_PASSWORD": endpoint.secret_key,
            "MINIO_REGION": REGION,
            # No phoning home, no update checks: this machine has no internet.
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER": "off",
        },
    )
    live = f"{endpoint.endpoint_url}/minio/health/live"
    wait_until("minio /minio/health/live", lambda: answers_ok(live), 30, [process])
    return endpoint
