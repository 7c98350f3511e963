"""The imported weights recognise real photos: with the normalisation stored in their
catalog entry, the top-5 ImageNet classes of a temple and a flower are plausible, and
a wrong but shape-compatible mapping is caught."""

import re

import pytest

from tailor_catalog.weights import create, load_strictly, mapped_state, preprocessing_of
from tests.unit.catalog.references import plausible, ranked, sample_photos


def photos_for(architecture: str, layout: str):
    p = preprocessing_of(architecture, layout)
    return sample_photos(p.input_size, p.mean, p.std, p.interpolation)


def test_efficientnet_lite0_recognises_the_photos(lite0_model):
    ranking = ranked(lite0_model, photos_for("tf_efficientnet_lite0", "efficientnet-pytorch"))
    assert plausible(ranking) == []
    assert ranking[0][0] == 698  # palace
    assert ranking[1][0] == 985  # daisy


def test_mobilenetv2_recognises_the_photos(mobilenet_model):
    ranking = ranked(mobilenet_model, photos_for("mobilenetv2_100", "torchvision-mobilenetv2"))
    assert plausible(ranking) == []
    assert ranking[0][0] == 698  # palace


def test_the_stored_normalisation_is_the_one_the_weights_want():
    lite = preprocessing_of("tf_efficientnet_lite0", "efficientnet-pytorch")
    assert (lite.mean, lite.std, lite.input_size, lite.interpolation) == (
        (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 224, "bicubic"
    )  # fmt: skip
    mobile = preprocessing_of("mobilenetv2_100", "torchvision-mobilenetv2")
    assert (mobile.mean, mobile.std, mobile.interpolation) == (
        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bilinear"
    )  # fmt: skip


def _batch_norms_swapped(state: dict) -> dict:
    """A plausible mapping bug: the expand and depthwise batch norms of the inverted
    residual blocks exchanged (_bn0 <-> _bn1); every shape still fits."""
    swapped = dict(state)
    for key in state:
        if re.match(r"blocks\.[1-6]\.\d+\.bn1\.", key):
            other = key.replace(".bn1.", ".bn2.")
            swapped[key], swapped[other] = state[other], state[key]
    return swapped


@pytest.mark.parametrize(
    ("fixture", "layout"),
    [("lite0", "efficientnet-pytorch"), ("mobilenet", "torchvision-mobilenetv2")],
)
def test_a_wrong_mapping_fails_the_photo_check(request, fixture, layout):
    source = request.getfixturevalue(fixture)
    model = create(source.architecture)
    wrong = _batch_norms_swapped(mapped_state(model, source.state, layout))
    load_strictly(model, wrong, source.architecture, layout)  # shapes cannot tell
    assert plausible(ranked(model, photos_for(source.architecture, layout))) != []
