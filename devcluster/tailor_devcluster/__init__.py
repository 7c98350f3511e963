"""A local Kubernetes control plane, S3 and Prometheus, run as plain processes.

For development and tests on a machine without Docker: kube-apiserver, etcd,
kube-controller-manager, kube-scheduler and kwok (simulated GPU nodes), MinIO and
Prometheus, all on loopback with free ports. Production runs on real clusters.
"""

from tailor_devcluster.cluster import ClusterSettings, LocalCluster

__all__ = ["ClusterSettings", "LocalCluster"]
