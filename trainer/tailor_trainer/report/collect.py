"""The report of an export, gathered from the trial that made it.

The report describes exactly the exported weights: the best checkpoint is loaded into a
copy of the model and run once over the evaluation split, and the wrong images are read
back through the trial's own reader for their thumbnails. Nothing here may fail the
export: a report that cannot be made is a logged warning.
"""

import copy
import hashlib
import io
import logging
import posixpath
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageOps

from tailor_trainer import checkpoint
from tailor_trainer.cache import CachedReader, default_cache_dir
from tailor_trainer.coco import ImageEntry
from tailor_trainer.data import CocoImages
from tailor_trainer.evaluate import predict
from tailor_trainer.report import stats, write_report
from tailor_trainer.report.detection_document import DetectionReportData
from tailor_trainer.report.document import MAX_MISTAKES, ReportData
from tailor_trainer.storage import Storage, join
from tailor_trainer.trial import Trial

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 128  # pixels, the longer side


def thumbnail(image: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of an image (never larger than the original), upright per EXIF."""
    with Image.open(io.BytesIO(image)) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    picture.thumbnail((side, side))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85, optimize=True)
    return buffer.getvalue()


def read_thumbnails(
    reader: CachedReader, entries: Sequence[ImageEntry], indices: Sequence[int]
) -> dict[int, bytes]:
    """Thumbnails by evaluation position; an image that cannot be read is left out."""
    found: dict[int, bytes] = {}
    for index in indices:
        entry = entries[index]
        try:
            found[index] = thumbnail(reader.read(entry.uri))
        except Exception as error:  # the page shows "image unavailable" instead
            log.warning("report: no thumbnail of image %s (%s): %s", entry.id, entry.uri, error)
    return found


def image_name(entry: ImageEntry) -> str:
    return f"#{entry.id} {posixpath.basename(entry.uri)}"


def gather(trial: Trial, should_stop: Callable[[], bool] = lambda: False) -> ReportData | None:
    """The report's data for the trial's best checkpoint; None when stopped by a signal
    or when this process has no evaluation split."""
    loader = trial.eval_loader
    if loader is None:
        return None
    weights, meta = checkpoint.load_best(trial.storage, trial.config.output)
    model = copy.deepcopy(trial.plain)
    model.load_state_dict(weights)
    probabilities, targets = predict(
        model,
        loader,
        trial.world.device,
        trial.autocast,
        trial.multilabel,
        trial.runner.channels_last,
        should_stop=should_stop,
    )
    del model
    if probabilities is None:
        return None
    entries = trial.dataset.evaluation
    wrong = stats.mistakes(
        probabilities, targets, trial.multilabel, trial.hp.threshold, MAX_MISTAKES
    )
    dataset = loader.dataset
    reader = (
        dataset.reader
        if isinstance(dataset, CocoImages)
        else CachedReader(trial.storage, default_cache_dir())
    )
    return ReportData(
        model=str(meta["model"]),
        task=str(meta["task"]),
        classes=list(meta["classes"]),
        probabilities=probabilities,
        targets=targets,
        primary_metric=str(meta["primary_metric"]),
        dataset_digest=str(meta["dataset_digest"]),
        gpu_seconds=float(meta["gpu_seconds"]),
        threshold=trial.hp.threshold,
        trial=trial.config.trial,
        step=int(meta["step"]),
        search=trial.config.search,
        thumbnails=read_thumbnails(reader, entries, [m.index for m in wrong]),
        image_names=[image_name(entry) for entry in entries],
    )


def upload(storage: Storage, folder: Path, paths: Sequence[Path], destination: str) -> list[str]:
    """Copies the written files under destination, the page last; lists them in the card."""
    from tailor_trainer.exporter import list_in_card

    uris, digests = [], {}
    for path in paths:
        relative = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        uri = join(destination, *relative.split("/"))
        storage.write(uri, data)
        uris.append(uri)
        digests[relative] = "sha256:" + hashlib.sha256(data).hexdigest()
    list_in_card(storage, destination, digests)
    return uris


def write_export_report(
    trial: Trial, export_uri: str, should_stop: Callable[[], bool] = lambda: False
) -> list[str]:
    """Writes report.html and report/*.png into the export; returns their URIs.

    Never raises for the report's sake: the bundle is complete without it.
    """
    from tailor_trainer.report import write_detection_report
    from tailor_trainer.report.detection_collect import gather_detection

    try:
        data = (
            gather_detection(trial, should_stop) if trial.detection else gather(trial, should_stop)
        )
        if data is None:
            log.warning("report: not written (stopped, or no evaluation split here)")
            return []
        with tempfile.TemporaryDirectory(prefix="tailor-report-") as scratch:
            folder = Path(scratch)
            written = (
                write_detection_report(folder, data)
                if isinstance(data, DetectionReportData)
                else write_report(folder, data)
            )
            uris = upload(trial.storage, folder, written, export_uri)
    except Exception as error:
        log.warning("report: not written: %s", error, exc_info=True)
        return []
    log.info("evaluation report: %s", uris[-1])
    return uris
