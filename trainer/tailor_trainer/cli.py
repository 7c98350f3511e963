"""`tailor-train`: validate a dataset, run one trial attempt, export a trained model,
or classify images with an exported one (`predict`).

The exit code is the contract with the operator (tailor_contract.ExitCode); every
sub-command but predict also leaves an AttemptResult in the termination message.
"""

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence

from tailor_contract import AttemptResult, ExitCode, describe_exit
from tailor_trainer.errors import USAGE_EXIT, AttemptEnded, ConfigError
from tailor_trainer.storage import Storage, StorageError
from tailor_trainer.termination import write_termination_message

log = logging.getLogger("tailor_trainer")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tailor-train", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("validate", help="check a COCO dataset on the CPU")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--annotations", help="training annotation file URI")
    source.add_argument(
        "--config",
        help="a TrialConfig JSON (what the operator's validation pod mounts): dataset, task, "
        "endpoint, the job's budget as allowance_gpu_seconds, and the backbone catalog to "
        "verify",
    )
    check.add_argument("--evaluation", help="evaluation annotation file URI")
    check.add_argument(
        "--task", choices=["classification", "multilabel", "detection"], default="classification"
    )
    check.add_argument("--endpoint", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL)")
    check.add_argument("--budget-gpu-seconds", type=float, help="fail with 67 below the estimate")
    check.add_argument(
        "--input-size", type=int, help="side used by the estimate (default: from the images)"
    )
    check.add_argument("--model", help="backbone the estimate prices (default: the cheapest)")
    check.add_argument("--min-images-per-class", type=int, default=2)
    check.add_argument("--workers", type=int, default=16, help="parallel image reads")
    check.add_argument("--max-problems", type=int, default=50, help="problems listed in full")

    run = commands.add_parser("run", help="run one trial attempt")
    run.add_argument("--config", required=True, help="TrialConfig JSON file")

    export = commands.add_parser("export", help="write the export bundle of a trained trial")
    export.add_argument("--output", required=True, help="the trial's output URI prefix")
    export.add_argument("--checkpoint", help="weights to export (default: the best one)")
    export.add_argument("--destination", help="bundle prefix (default: OUTPUT/export)")
    export.add_argument("--endpoint", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL)")

    classify = commands.add_parser(
        "predict", help="classify images, or detect objects, with an exported model"
    )
    classify.add_argument("images", nargs="+", help="image files or URIs")
    classify.add_argument("--model", required=True, help="the export bundle (folder or s3:// URI)")
    classify.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    classify.add_argument("--top", type=int, default=3, help="classes shown per image")
    classify.add_argument("--json", action="store_true", help="one JSON document per image")
    classify.add_argument(
        "--min-confidence", type=float, default=0.5, help="detection: objects kept from here"
    )
    classify.add_argument(
        "--max-objects", type=int, default=100, help="detection: objects per image at most"
    )
    classify.add_argument(
        "--draw",
        help="detection: write the image with its boxes to this PNG (IMAGE-N.png for several)",
    )
    classify.add_argument("--endpoint", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL)")
    return parser


def _validate(args: argparse.Namespace) -> int:
    import torch

    from tailor_contract import GivenTrial, Hyperparameters, PretrainedBackbone
    from tailor_contract.cost import REFERENCE
    from tailor_trainer.data import cpu_threads, usable_cpus
    from tailor_trainer.validate import OutputClaim, ValidateOptions, validate

    torch.set_num_threads(cpu_threads(usable_cpus()))  # the pod's CPUs, not the node's
    cost = REFERENCE
    catalog: tuple[PretrainedBackbone, ...] = ()
    candidates: tuple[str, ...] = ()
    given: tuple[GivenTrial, ...] = ()
    claim = None
    eval_fraction, seed = Hyperparameters().eval_fraction, 0
    if args.config:
        # The operator's validation pod: its allowance is the whole job's budget.
        from tailor_trainer.config import hyperparameters_of, load_trial_config

        config = load_trial_config(args.config)
        args.annotations = config.dataset.train
        args.evaluation = args.evaluation or config.dataset.evaluation
        args.task = config.task
        args.endpoint = args.endpoint or config.dataset.endpoint
        # The operator names the cheapest backbone its search may use.
        args.model = args.model or config.model
        if args.budget_gpu_seconds is None:
            args.budget_gpu_seconds = config.allowance_gpu_seconds
        # The operator's prices: its search and this check agree on the minimum.
        cost = config.cost_model or REFERENCE
        # The catalog to verify, and the evaluation split the trials will score on.
        catalog = tuple(config.catalog)
        eval_fraction, seed = hyperparameters_of(config).eval_fraction, config.seed
        # The models and weights the spec names, checked before any GPU.
        candidates, given = tuple(config.candidate_models), tuple(config.given_trials)
        # The job's output prefix: refused if another job's, claimed once all passed.
        if config.job_output:
            claim = OutputClaim(config.job_output, config.job, config.job_uid)
    options = ValidateOptions(
        annotations=args.annotations,
        evaluation=args.evaluation,
        task=args.task,
        budget_gpu_seconds=args.budget_gpu_seconds,
        input_size=args.input_size,
        model=args.model,
        cost=cost,
        min_images_per_class=args.min_images_per_class,
        workers=args.workers,
        max_problems=args.max_problems,
        catalog=catalog,
        eval_fraction=eval_fraction,
        seed=seed,
        candidate_models=candidates,
        given_trials=given,
        claim=claim,
    )
    report = validate(Storage(args.endpoint), options)
    print(json.dumps(report.to_json(), indent=2))
    write_termination_message(report.result)
    log.info("validate: %s (%s)", report.code.name, report.result.reason)
    return int(report.code)


def _run(args: argparse.Namespace, started: float) -> int:
    from tailor_trainer.run import run_from_file

    return run_from_file(args.config, started)


def _export(args: argparse.Namespace) -> int:
    from tailor_trainer.exporter import export_trial

    exported = export_trial(
        Storage(args.endpoint),
        args.output,
        checkpoint_uri=args.checkpoint,
        destination=args.destination,
    )
    write_termination_message(
        AttemptResult(
            exit=ExitCode.SUCCESS.name, export_uri=exported.uri, export_digest=exported.digest
        )
    )
    print(json.dumps({"export_uri": exported.uri, "export_digest": exported.digest}))
    return int(ExitCode.SUCCESS)


def _predict(args: argparse.Namespace) -> int:
    """Not an attempt: errors go to stderr, nothing to the termination message."""
    from tailor_trainer.predict import describe, load_classifier, predict

    storage = Storage(args.endpoint)
    try:
        if _is_detection(storage, args.model):
            return _detect(args, storage)
        classifier = load_classifier(storage, args.model, args.backend)
        predictions = predict(classifier, storage, args.images, args.top)
    except ConfigError as error:
        print(f"tailor-train predict: {error}", file=sys.stderr)
        return USAGE_EXIT
    if args.json:
        for item in predictions:
            print(json.dumps(item.to_json()))
    else:
        print(describe(predictions))
    return int(ExitCode.SUCCESS)


def _is_detection(storage: Storage, bundle: str) -> bool:
    from tailor_trainer.detection.predict import is_detection_bundle
    from tailor_trainer.storage import ObjectNotFound, join

    try:
        text = storage.read(join(bundle, "config.json")).decode()
    except ObjectNotFound:
        return False  # load_classifier names what is missing
    return is_detection_bundle(text)


def _detect(args: argparse.Namespace, storage: Storage) -> int:
    from pathlib import Path

    from tailor_trainer.detection.predict import (
        describe,
        detect_objects,
        draw,
        load_detection_model,
    )
    from tailor_trainer.predict import open_image
    from tailor_trainer.storage import join

    model = load_detection_model(
        storage.read(join(args.model, "config.json")).decode(),
        lambda name: storage.read(join(args.model, name)),
        args.model,
        args.backend,
    )
    pictures = [(uri, open_image(storage, uri)) for uri in args.images]
    found = detect_objects(model, pictures, args.min_confidence, args.max_objects)
    if args.draw:
        target = Path(args.draw)
        for number, ((_, picture), item) in enumerate(zip(pictures, found, strict=True)):
            path = target if len(found) == 1 else target.with_name(f"{target.stem}-{number}.png")
            draw(picture, item, path)
    if args.json:
        for item in found:
            print(json.dumps(item.to_json()))
    else:
        print(describe(found))
    return int(ExitCode.SUCCESS)


def _fail(code: int, reason: str, problems: list[str] | None = None) -> int:
    log.error("%s: %s", describe_exit(code), reason)
    write_termination_message(
        AttemptResult(exit=describe_exit(code), reason=reason, problems=problems or [])
    )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    # The container's start is what the operator charges: measure from here, not later.
    # A rank started by our launcher counts from the launcher's start.
    started = float(os.environ.get("TAILOR_STARTED_MONOTONIC", time.monotonic()))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The ONNX exporter logs every graph rewrite at INFO; the trainer's own lines matter.
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx", "torch._dynamo", "torch.export"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "run":
            return _run(args, started)
        return _export(args)
    except ConfigError as error:
        # The user must change the TrainingJob: the operator never retries this code.
        return _fail(int(ExitCode.INVALID_CONFIG), f"invalid configuration: {error}")
    except AttemptEnded as error:
        # Raised before a run could keep its own books (e.g. export, early dataset errors).
        return _fail(int(error.code), error.reason, error.problems)
    except StorageError as error:
        # Network, throttling, a server error: another attempt may well succeed.
        return _fail(int(ExitCode.RETRYABLE), f"storage error: {error}")
    except Exception as error:
        traceback.print_exc()
        return _fail(1, f"unexpected {type(error).__name__}: {error}")


if __name__ == "__main__":
    sys.exit(main())
