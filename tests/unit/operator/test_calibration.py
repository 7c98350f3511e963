import pytest

from tailor_operator.core.calibration import BUILTIN, CalibrationError, parse_calibration


def test_a_table_with_products_a_default_and_a_version() -> None:
    table = parse_calibration(
        {
            "version": "2025-03",
            "default": "0.8",
            "NVIDIA-A100-SXM4-80GB": "1",
            "NVIDIA-H100-80GB-HBM3": "2.2",
        },
        fallback_version="123",
    )
    assert table.version == "2025-03"
    assert table.factor_for("NVIDIA-H100-80GB-HBM3") == 2.2
    assert table.factor_for("Tesla-T4") == 0.8
    assert table.factor_for(None) == 0.8
    assert table.highest_factor() == 2.2
    assert table.highest_factor(["NVIDIA-A100-SXM4-80GB", "Tesla-T4"]) == 1.0


def test_without_a_version_the_resource_version_versions_the_table() -> None:
    assert parse_calibration({"default": "1"}, fallback_version="4711").version == "4711"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, "no data"),
        ({"version": "1"}, "'default'"),
        ({"default": "fast"}, "'default': 'fast' is not a number"),
        ({"default": "1", "T4": "0"}, "'T4': factor 0.0 must be above 0"),
        ({"default": "1", "T4": "-1"}, "'T4'"),
        ({"default": "1000"}, "at most 100"),
    ],
)
def test_bad_tables_name_the_key(data, words) -> None:
    with pytest.raises(CalibrationError, match=words.replace("(", r"\(")):
        parse_calibration(data, fallback_version="1")


def test_the_builtin_table_charges_every_gpu_as_the_reference() -> None:
    assert BUILTIN.factor_for("anything") == 1.0
