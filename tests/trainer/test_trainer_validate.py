"""`validate`: every dataset defect is found, named and mapped to the contract's exit code."""

import json
import subprocess
import sys

import pytest

from tailor_contract import AttemptResult, ExitCode
from tailor_trainer.cli import main
from tailor_trainer.storage import Storage
from tailor_trainer.validate import ValidateOptions, validate


def _check(annotations: str, **options):
    return validate(Storage(), ValidateOptions(annotations=annotations, **options))


def _kinds(report) -> set[str]:
    return set(report.result.problem_counts)


def test_a_valid_dataset_passes_with_its_facts(local_dataset):
    report = _check(local_dataset.annotations)
    assert report.code == ExitCode.SUCCESS, report.result.problems
    facts = report.result.dataset
    assert facts is not None
    assert (facts.images, facts.classes, facts.decoded_images) == (12, 3, 12)
    assert (facts.mean_width, facts.mean_height) == (32.0, 32.0)
    assert facts.min_class_images == 4
    assert facts.pixel_mean is not None
    assert facts.pixel_std is not None
    assert all(0.0 < v < 1.0 for v in facts.pixel_mean)
    assert all(0.0 < v < 0.5 for v in facts.pixel_std)
    assert facts.digest.startswith("sha256:")
    assert report.result.estimated_min_gpu_seconds is not None


def test_the_digest_changes_with_the_annotations(local_dataset):
    before = _check(local_dataset.annotations).result.dataset
    local_dataset.document["categories"][0]["name"] = "renamed"
    local_dataset.save()
    after = _check(local_dataset.annotations).result.dataset
    assert before is not None
    assert after is not None
    assert before.digest != after.digest


def test_a_missing_annotation_file_is_not_found(tmp_path):
    report = _check(str(tmp_path / "absent.json"))
    assert report.code == ExitCode.DATASET_NOT_FOUND
    assert "absent.json" in report.result.reason


def test_a_missing_evaluation_file_is_not_found(local_dataset, tmp_path):
    report = _check(local_dataset.annotations, evaluation=str(tmp_path / "eval.json"))
    assert report.code == ExitCode.DATASET_NOT_FOUND
    assert "evaluation" in report.result.reason


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"images": [', "line 1"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        (b"[1, 2, 3]", "JSON object"),
    ],
)
def test_unreadable_json_is_corrupt(tmp_path, content, needle):
    path = tmp_path / "train.json"
    path.write_bytes(content)
    report = _check(str(path))
    assert report.code == ExitCode.DATASET_CORRUPT
    assert _kinds(report) == {"invalid_json"}
    assert needle in report.result.problems[0]


def test_missing_sections_and_fields_are_named(local_dataset):
    del local_dataset.document["categories"]
    local_dataset.save()
    report = _check(local_dataset.annotations)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert "'categories' is missing" in report.result.problems[0]


def test_entries_without_required_fields_are_listed(local_dataset):
    local_dataset.document["images"][0].pop("file_name")
    local_dataset.document["annotations"][1]["category_id"] = "1"
    local_dataset.document["categories"].append({"id": True, "name": "bool-id"})
    local_dataset.save()
    report = _check(local_dataset.annotations)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts["missing_field"] == 3
    text = "\n".join(report.result.problems)
    assert "has no 'file_name'" in text
    assert "annotations[1] needs integer" in text
    assert "categories[3] has no integer 'id'" in text


def test_duplicate_ids_are_found_in_every_section(local_dataset):
    document = local_dataset.document
    document["images"].append(dict(document["images"][0]))
    document["annotations"].append(dict(document["annotations"][0]))
    document["categories"].append({"id": 1, "name": "again"})
    local_dataset.save()
    report = _check(local_dataset.annotations)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts["duplicate_id"] == 3
    text = "\n".join(report.result.problems)
    for section in ("image id 1", "annotation id 1", "category id 1"):
        assert section in text


def test_annotations_pointing_nowhere_are_found(local_dataset):
    local_dataset.document["annotations"][0]["image_id"] = 999
    local_dataset.document["annotations"][1]["category_id"] = 77
    local_dataset.save()
    report = _check(local_dataset.annotations)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts == {"unknown_image": 1, "unknown_category": 1}
    assert any("unknown image 999" in p for p in report.result.problems)
    assert any("unknown category 77" in p for p in report.result.problems)


def test_images_missing_from_storage_are_counted_and_the_list_is_capped(local_dataset):
    for position in range(7):
        local_dataset.image_path(position).unlink()
    report = _check(local_dataset.annotations)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts == {"missing_image": 7}
    listed = [p for p in report.result.problems if p.startswith("missing_image")]
    assert len(listed) == 5
    assert report.result.dataset is not None
    assert report.result.dataset.decoded_images == 5


def test_images_that_fail_to_decode_are_found(local_dataset):
    truncated = local_dataset.image_path(0)
    truncated.write_bytes(truncated.read_bytes()[:40])
    local_dataset.image_path(1).write_bytes(b"not an image at all")
    report = _check(local_dataset.annotations)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts == {"undecodable_image": 2}


def test_classes_with_too_few_images_are_named(local_dataset):
    # Class 0 keeps one image: relabel the others as class 1.
    relabelled = 0
    for annotation in local_dataset.document["annotations"]:
        if annotation["category_id"] == 1:
            relabelled += 1
            if relabelled > 1:
                annotation["category_id"] = 2
    local_dataset.document["categories"].append({"id": 9, "name": "never-used"})
    local_dataset.save()
    report = _check(local_dataset.annotations)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts == {"too_few_images": 2}
    text = "\n".join(report.result.problems)
    assert "'class-0' (id 1) has 1 training image" in text
    assert "'never-used' (id 9) has 0 training image" in text


def test_an_empty_split_is_corrupt(local_dataset):
    document = local_dataset.document
    local_dataset.document = {"images": [], "annotations": [], "categories": document["categories"]}
    evaluation = local_dataset.save("eval.json")
    local_dataset.document = document
    report = _check(local_dataset.annotations, evaluation=evaluation)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts == {"empty_split": 1}
    assert "evaluation" in report.result.problems[0]


def test_several_categories_on_one_image_is_corrupt_for_classification_only(local_dataset):
    local_dataset.document["annotations"].append({"id": 500, "image_id": 1, "category_id": 2})
    local_dataset.save()
    classification = _check(local_dataset.annotations)
    assert classification.code == ExitCode.DATASET_CORRUPT
    assert classification.result.problem_counts == {"multiple_labels": 1}
    assert _check(local_dataset.annotations, task="multilabel").code == ExitCode.SUCCESS


def test_evaluation_categories_must_match_training(local_dataset):
    document = local_dataset.document
    evaluation = json.loads(json.dumps(document))
    evaluation["categories"][0]["name"] = "something-else"
    local_dataset.document = evaluation
    evaluation_uri = local_dataset.save("eval.json")
    local_dataset.document = document
    report = _check(local_dataset.annotations, evaluation=evaluation_uri)
    assert report.code == ExitCode.DATASET_CORRUPT
    assert report.result.problem_counts == {"category_mismatch": 1}
    assert "'something-else' here but 'class-0' in training" in report.result.problems[0]


def test_unlabelled_images_are_a_warning_not_a_failure(local_dataset):
    local_dataset.document["images"].append(
        {"id": 900, "file_name": local_dataset.document["images"][0]["file_name"]}
    )
    local_dataset.save()
    report = _check(local_dataset.annotations)
    assert report.code == ExitCode.SUCCESS
    assert report.warning_counts == {"unlabeled_image": 1}
    assert report.result.dataset is not None
    assert report.result.dataset.images == 12


def test_a_budget_below_the_estimate_is_not_enough(local_dataset):
    estimate = _check(local_dataset.annotations).result.estimated_min_gpu_seconds
    assert estimate is not None
    short = _check(local_dataset.annotations, budget_gpu_seconds=estimate * 0.9)
    assert short.code == ExitCode.BUDGET_NOT_ENOUGH
    assert f"{estimate:g}" in short.result.reason
    assert _check(local_dataset.annotations, budget_gpu_seconds=estimate).code == ExitCode.SUCCESS


def test_cli_prints_the_report_and_leaves_a_termination_message(
    local_dataset, termination_log, capsys
):
    local_dataset.image_path(0).unlink()
    code = main(["validate", "--annotations", local_dataset.annotations])
    assert code == 65
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["problem_counts"] == {"missing_image": 1}
    message = AttemptResult.model_validate_json(termination_log.read_text())
    assert message.exit == "DATASET_CORRUPT"
    assert message.problem_counts == {"missing_image": 1}
    assert message.dataset is not None
    assert message.dataset.images == 12


def test_an_unwritable_termination_log_is_only_a_warning(
    local_dataset, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("TAILOR_TERMINATION_LOG", str(tmp_path / "no" / "such" / "dir" / "log"))
    assert main(["validate", "--annotations", local_dataset.annotations]) == 0
    assert "cannot write the termination message" in caplog.text


def test_a_long_problem_list_still_fits_the_termination_message(local_dataset, termination_log):
    for image in local_dataset.document["images"]:
        image["file_name"] = "missing/" + "x" * 900 + f"{image['id']}.png"
    local_dataset.save()
    assert main(["validate", "--annotations", local_dataset.annotations, "--max-problems", "50"])
    assert len(termination_log.read_bytes()) <= 4096
    assert AttemptResult.model_validate_json(termination_log.read_text()).problem_counts == {
        "missing_image": 12
    }


def test_the_module_entry_point_exits_with_the_contract_code(tmp_path, termination_log):
    result = subprocess.run(
        [sys.executable, "-m", "tailor_trainer", "validate", "--annotations", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == ExitCode.DATASET_NOT_FOUND
    assert json.loads(result.stdout)["exit"] == "DATASET_NOT_FOUND"
    assert json.loads(termination_log.read_text())["exit"] == "DATASET_NOT_FOUND"


def _validation_config(tmp_path, annotations: str, budget: float, cost=None):
    """The TrialConfig the operator mounts into its validation pod."""
    from tailor_contract import DatasetRef, TrialConfig

    config = TrialConfig(
        job="team-a/insects",
        job_uid="uid-insects",
        trial="validate",
        attempt=1,
        task="classification",
        dataset=DatasetRef(train=annotations),
        model="test_resnet",
        allowance_gpu_seconds=budget,
        calibration_factor=1.0,
        gpus=0,
        output=str(tmp_path / "out") + "/",
        cost_model=cost,
    )
    path = tmp_path / "trial.json"
    path.write_text(config.model_dump_json())
    return path


def test_validate_reads_the_operators_config_and_checks_the_budget(
    local_dataset, tmp_path, termination_log, capsys
):
    estimate = _check(local_dataset.annotations).result.estimated_min_gpu_seconds
    assert estimate is not None
    enough = _validation_config(tmp_path, local_dataset.annotations, estimate * 2)
    assert main(["validate", "--config", str(enough)]) == ExitCode.SUCCESS
    short = _validation_config(tmp_path, local_dataset.annotations, estimate / 2)
    assert main(["validate", "--config", str(short)]) == ExitCode.BUDGET_NOT_ENOUGH
    message = AttemptResult.model_validate_json(termination_log.read_text())
    assert message.exit == "BUDGET_NOT_ENOUGH"
    assert message.estimated_min_gpu_seconds == pytest.approx(estimate)


def test_validate_checks_the_budget_at_the_prices_the_operator_sends(
    local_dataset, tmp_path, termination_log
):
    """A platform whose attempts start in seconds, not minutes, affords smaller budgets;
    validation must agree with the operator's search on what the minimum is."""
    from tailor_contract.cost import REFERENCE, CostModel, minimum_search_gpu_seconds

    quick = CostModel(fixed_seconds=5.0, reference_images_per_second=8.0)
    reference = _check(local_dataset.annotations).result.estimated_min_gpu_seconds
    assert reference is not None
    budget = reference / 4  # refused at the reference prices
    assert (
        main(
            [
                "validate",
                "--config",
                str(_validation_config(tmp_path, local_dataset.annotations, budget)),
            ]
        )
        == ExitCode.BUDGET_NOT_ENOUGH
    )
    config = _validation_config(tmp_path, local_dataset.annotations, budget, quick)
    assert main(["validate", "--config", str(config)]) == ExitCode.SUCCESS
    message = AttemptResult.model_validate_json(termination_log.read_text())
    assert message.dataset is not None
    expected = minimum_search_gpu_seconds(message.dataset, "test_resnet", cost=quick)
    assert message.estimated_min_gpu_seconds == pytest.approx(expected)
    assert (
        expected
        < budget
        < minimum_search_gpu_seconds(message.dataset, "test_resnet", cost=REFERENCE)
    )


def test_validate_needs_a_dataset_or_a_config(capsys):
    with pytest.raises(SystemExit) as usage:
        main(["validate"])
    assert usage.value.code == 2
    assert "--annotations" in capsys.readouterr().err


def _relabel(local_dataset, categories: list[int]) -> None:
    """Gives the dataset's images these category ids, in order."""
    for annotation, category in zip(local_dataset.document["annotations"], categories, strict=True):
        annotation["category_id"] = category
    local_dataset.save()


def test_majority_fraction_is_the_most_common_class_share_of_the_evaluation_split(
    local_dataset,
):
    # 8 / 2 / 2 training images; no evaluation file: the trainer's stratified split.
    _relabel(local_dataset, [1] * 8 + [2] * 2 + [3] * 2)
    facts = _check(local_dataset.annotations).result.dataset
    assert facts is not None
    assert facts.majority_fraction == pytest.approx(1 / 3)  # one image of each (20%, at least 1)
    half = _check(local_dataset.annotations, eval_fraction=0.5).result.dataset
    assert half is not None
    assert half.majority_fraction == pytest.approx(4 / 6)  # 4 / 1 / 1

    # An evaluation file is used as it is.
    document = local_dataset.document
    local_dataset.document = json.loads(json.dumps(document))
    _relabel(local_dataset, [1] * 9 + [2] * 2 + [3])
    evaluation = local_dataset.save("eval.json")
    local_dataset.document = document
    local_dataset.save()
    facts = _check(local_dataset.annotations, evaluation=evaluation).result.dataset
    assert facts is not None
    assert facts.majority_fraction == pytest.approx(9 / 12)

    multilabel = _check(local_dataset.annotations, task="multilabel").result.dataset
    assert multilabel is not None
    assert multilabel.majority_fraction is None


def _catalog(tmp_path) -> list:
    """Catalog entries, one good, the others broken each in its own way."""
    from safetensors.torch import save_file

    from tailor_contract import PretrainedBackbone
    from tailor_trainer.model import create_model
    from tailor_trainer.pretrained import sha256_digest

    weights = tmp_path / "test-resnet.safetensors"
    state = create_model("test_resnet", 1000).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    digest = sha256_digest(weights.read_bytes())
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors at all")

    def entry(name: str, **fields) -> PretrainedBackbone:
        values = {"architecture": "test_resnet", "weights": str(weights), "digest": digest}
        return PretrainedBackbone(name=name, gmacs=0.1, **{**values, **fields})

    return [
        entry("good"),
        entry("tampered", digest="sha256:" + "1" * 64),
        entry("missing", weights=str(tmp_path / "absent.safetensors")),
        entry("other-architecture", architecture="test_efficientnet"),
        entry("typo", architecture="resnet_typo"),
        entry("garbage", weights=str(garbage), digest=sha256_digest(garbage.read_bytes())),
    ]


def test_validation_verifies_the_catalog_and_names_what_is_wrong(local_dataset, tmp_path):
    catalog = _catalog(tmp_path)
    report = _check(local_dataset.annotations, catalog=tuple(catalog))
    assert report.code == ExitCode.SUCCESS  # a bad catalog entry never fails the dataset
    assert report.result.verified_backbones == ["good"]
    unusable = report.result.unusable_backbones
    assert set(unusable) == {"tampered", "missing", "other-architecture", "typo", "garbage"}
    assert "sha256:" + "1" * 64 in unusable["tampered"]
    assert catalog[0].digest in unusable["tampered"]  # what the file really is
    assert "absent.safetensors" in unusable["missing"]
    assert "not found" in unusable["missing"]
    assert "do not load into" in unusable["other-architecture"]
    assert "'test_efficientnet'" in unusable["other-architecture"]
    assert "no architecture 'resnet_typo'" in unusable["typo"]
    assert "not safetensors" in unusable["garbage"]
    assert all(len(reason) <= 400 for reason in unusable.values())


def test_the_validation_pod_verifies_the_catalog_in_its_config(
    local_dataset, tmp_path, termination_log, capsys
):
    from tailor_contract import DatasetRef, TrialConfig

    catalog = _catalog(tmp_path)[:2]

    def config_file(annotations: str) -> str:
        config = TrialConfig(
            job="team-a/insects",
            job_uid="uid-insects",
            trial="validate",
            attempt=1,
            task="classification",
            dataset=DatasetRef(train=annotations),
            model="test_resnet",
            catalog=catalog,
            hyperparameters={"eval_fraction": 0.5},
            allowance_gpu_seconds=1e9,
            calibration_factor=1.0,
            gpus=0,
            output=str(tmp_path / "out"),
        )
        path = tmp_path / "trial.json"
        path.write_text(config.model_dump_json())
        return str(path)

    _relabel(local_dataset, [1] * 8 + [2] * 2 + [3] * 2)
    assert main(["validate", "--config", config_file(local_dataset.annotations)]) == 0
    message = AttemptResult.model_validate_json(termination_log.read_text())
    assert message.verified_backbones == ["good"]
    assert list(message.unusable_backbones) == ["tampered"]
    assert message.dataset is not None
    assert message.dataset.majority_fraction == pytest.approx(4 / 6)  # the config's split

    local_dataset.image_path(0).unlink()  # the dataset decides the exit code
    assert main(["validate", "--config", config_file(local_dataset.annotations)]) == 65
    message = AttemptResult.model_validate_json(termination_log.read_text())
    assert message.verified_backbones == ["good"]
