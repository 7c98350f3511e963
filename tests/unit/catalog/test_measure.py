"""GMACs and parameters, against the figures timm and the papers publish."""

import pytest

from tailor_catalog.measure import gmacs, parameters_millions
from tailor_catalog.weights import create


@pytest.mark.parametrize(
    ("architecture", "expected_gmacs", "expected_millions"),
    [
        ("tf_efficientnet_lite0", 0.39, 4.65),  # paper: 0.39B FLOPs (multiply-adds)
        ("mobilenetv2_100", 0.30, 3.50),  # paper: 300M multiply-adds, 3.4M parameters
    ],
)
def test_gmacs_and_parameters_match_the_published_figures(
    architecture, expected_gmacs, expected_millions
):
    model = create(architecture)
    assert gmacs(model, 224) == pytest.approx(expected_gmacs, rel=0.03)
    assert parameters_millions(model) == pytest.approx(expected_millions, rel=0.01)


def test_gmacs_grow_with_the_area():
    model = create("mobilenetv2_100")
    assert gmacs(model, 448) == pytest.approx(4 * gmacs(model, 224), rel=0.02)
    assert model.training is False  # measuring leaves the mode as it was
