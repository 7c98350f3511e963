"""One real node with the trainer image for the modules here, which need the same
cluster (no Prometheus, the node's default slots): starting it imports some 6 GB into
containerd, about 90 s, so they share it. Package scope: the node is gone before the
next module of tests/integration/realnode/ starts its own (the bridge holds one real
node at a time)."""

from collections.abc import Iterator

import pytest

from tailor_devcluster.cluster import LocalCluster
from tailor_devcluster.images import ImageBuilder
from tailor_devcluster.unpacked import unpacked_root
from tests.integration.realnode.conftest import trainer_node_cluster


@pytest.fixture(scope="package")
def trainer_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with trainer_node_cluster(tmp_path_factory) as cluster:
        node = cluster.real_nodes[0]
        trainer = ImageBuilder().newest_trainer_image()
        assert trainer is not None
        # The trainer image's layers stay unpacked for the next node to start from,
        # without the layer blobs the import discarded (else every start copies 6 GB).
        kept = unpacked_root(trainer.archive, node.binaries.containerd)
        content = kept / "io.containerd.content.v1.content"
        assert sum(f.stat().st_size for f in content.rglob("*") if f.is_file()) < 2**30
        yield cluster
    # The node's unpacked images (some 6 GB) went with it.
    assert not (cluster.real_node_state_dir / "containerd" / "root").exists()
