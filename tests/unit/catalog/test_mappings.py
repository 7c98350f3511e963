"""The key mappings put every tensor where timm expects it: strict loads, one-to-one
by name, and the same logits as an independent implementation on the original keys."""

import random

import pytest
import timm
import torch
import torchvision

from tailor_catalog.errors import CatalogError
from tailor_catalog.mappings import key_mapping
from tailor_catalog.weights import blocks_of, create, load_strictly, mapped_state
from tests.unit.catalog.references import efficientnet_lite0_reference


@pytest.mark.parametrize(
    ("fixture", "architecture", "layout"),
    [
        ("lite0", "tf_efficientnet_lite0", "efficientnet-pytorch"),
        ("mobilenet", "mobilenetv2_100", "torchvision-mobilenetv2"),
    ],
)
def test_the_mapped_checkpoint_loads_strictly_into_timm(request, fixture, architecture, layout):
    source = request.getfixturevalue(fixture)
    assert (source.architecture, source.layout) == (architecture, layout)
    model = timm.create_model(architecture, pretrained=False)  # 1000 classes
    mapped = mapped_state(model, source.state, layout)
    assert len(mapped) == len(source.state) == len(model.state_dict())  # one to one
    model.load_state_dict(mapped, strict=True)
    for source_key, target_key in key_mapping(layout, list(source.state), blocks_of(model)).items():
        assert torch.equal(source.state[source_key], model.state_dict()[target_key])


def test_the_mapping_goes_by_name_not_by_position(lite0):
    """A checkpoint stored in another order maps to exactly the same state."""
    model = create("tf_efficientnet_lite0")
    keys = list(lite0.state)
    random.Random(7).shuffle(keys)
    shuffled = {key: lite0.state[key] for key in keys}
    ordered = mapped_state(model, lite0.state, "efficientnet-pytorch")
    assert mapped_state(model, shuffled, "efficientnet-pytorch").keys() == ordered.keys()
    for key, value in mapped_state(model, shuffled, "efficientnet-pytorch").items():
        assert value is ordered[key]


def test_a_timm_checkpoint_needs_no_mapping(lite0_model):
    model = create("tf_efficientnet_lite0")
    state = lite0_model.state_dict()
    load_strictly(model, mapped_state(model, dict(state), "timm"), "tf_efficientnet_lite0", "timm")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_mobilenetv2_gives_torchvisions_logits(mobilenet, mobilenet_model):
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(mobilenet.state, strict=True)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference.eval()(x)
        actual = mobilenet_model.eval()(x)
    assert (actual - expected).abs().max().item() < 1e-4


def test_efficientnet_lite0_gives_the_reference_logits(lite0, lite0_model):
    torch.manual_seed(0)
    for side in (224, 225):  # odd and even sides: TensorFlow's 'same' padding either way
        x = torch.randn(2, 3, side, side)
        with torch.no_grad():
            expected = efficientnet_lite0_reference(lite0.state, x)
            actual = lite0_model.eval()(x)
        assert (actual - expected).abs().max().item() < 1e-4


def test_swapped_blocks_of_the_same_shape_are_caught_by_the_reference(lite0):
    """Residual networks barely notice two swapped blocks on photos; parity does."""
    model = create("tf_efficientnet_lite0")
    mapped = mapped_state(model, lite0.state, "efficientnet-pytorch")
    for key in [k for k in mapped if k.startswith("blocks.5.1.")]:
        other = key.replace("blocks.5.1.", "blocks.5.2.")
        mapped[key], mapped[other] = mapped[other], mapped[key]
    model.load_state_dict(mapped, strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        difference = (model.eval()(x) - efficientnet_lite0_reference(lite0.state, x)).abs().max()
    assert difference.item() > 1e-2


def test_a_checkpoint_of_another_variant_is_refused(lite0, mobilenet):
    lite1 = create("tf_efficientnet_lite1")
    with pytest.raises(CatalogError, match=r"16 blocks .*architecture 21"):
        mapped_state(lite1, lite0.state, "efficientnet-pytorch")
    with pytest.raises(CatalogError, match="17 blocks"):
        mapped_state(create("tf_efficientnet_lite0"), mobilenet.state, "torchvision-mobilenetv2")


def test_an_unknown_key_is_refused_not_guessed(lite0):
    state = {**lite0.state, "_blocks.3._se_reduce.weight": torch.zeros(1)}
    with pytest.raises(CatalogError, match="_se_reduce is not part of an EfficientNet-Lite block"):
        mapped_state(create("tf_efficientnet_lite0"), state, "efficientnet-pytorch")
    with pytest.raises(CatalogError, match="not a key of the efficientnet-pytorch layout"):
        mapped_state(
            create("tf_efficientnet_lite0"),
            {**lite0.state, "extra": torch.zeros(1)},
            "efficientnet-pytorch",
        )


def test_keys_that_do_not_fit_are_named(lite0):
    model = create("tf_efficientnet_lite0")
    with pytest.raises(CatalogError, match=r"296 unexpected \(e\.g\. _conv_stem\.weight"):
        load_strictly(
            model, mapped_state(model, lite0.state, "timm"), "tf_efficientnet_lite0", "timm"
        )
    mapped = mapped_state(model, lite0.state, "efficientnet-pytorch")
    mapped["classifier.weight"] = torch.zeros(10, 1280)
    with pytest.raises(CatalogError, match=r"classifier.weight is \(10, 1280\) in the checkpoint"):
        load_strictly(model, mapped, "tf_efficientnet_lite0", "efficientnet-pytorch")
