"""The detection report of an export, gathered from the trial that made it: the best
checkpoint's detections on the evaluation split (the same `detect` and post-processing
as the trial's evaluation), and the pictures of the images the page draws, read back
through the evaluation dataset (EXIF orientation applied, as the boxes assume)."""

import copy
import io
import logging
from collections.abc import Callable, Sequence

from tailor_trainer import checkpoint
from tailor_trainer.coco import ImageEntry
from tailor_trainer.detection.data import DetectionImages
from tailor_trainer.evaluate import detect
from tailor_trainer.report.collect import image_name
from tailor_trainer.report.detection_document import DetectionReportData, chosen_images
from tailor_trainer.report.detection_figures import DRAWN_SIDE, Picture
from tailor_trainer.trial import Trial

log = logging.getLogger(__name__)

KEPT_SIDE = 2 * DRAWN_SIDE  # pixels: what is kept of a picture until it is drawn


def read_pictures(
    dataset: DetectionImages, entries: Sequence[ImageEntry], indices: Sequence[int]
) -> dict[int, Picture]:
    """Small upright copies by evaluation position; an image that cannot be read is
    left out (the page shows "image unavailable")."""
    found: dict[int, Picture] = {}
    for index in indices:
        try:
            picture = dataset.read(index)
        except Exception as error:  # the report goes on without this picture
            log.warning("report: no picture of image %s: %s", entries[index].id, error)
            continue
        width, height = picture.size
        picture.thumbnail((KEPT_SIDE, KEPT_SIDE))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        found[index] = Picture(buffer.getvalue(), width, height)
    return found


def gather_detection(
    trial: Trial, should_stop: Callable[[], bool] = lambda: False
) -> DetectionReportData | None:
    """The report's data for the trial's best checkpoint; None when stopped by a signal
    or when this process has no evaluation split."""
    loader = trial.eval_loader
    if loader is None or not isinstance(loader.dataset, DetectionImages):
        return None
    weights, meta = checkpoint.load_best(trial.storage, trial.config.output)
    model = copy.deepcopy(trial.plain)
    model.load_state_dict(weights)
    entries = trial.dataset.evaluation
    found = detect(
        model,
        loader,
        entries,
        trial.world.device,
        trial.runner.channels_last,
        should_stop=should_stop,
    )
    del model
    if found is None:
        return None
    return DetectionReportData(
        model=str(meta["model"]),
        classes=list(meta["classes"]),
        images=found,
        primary_metric=str(meta["primary_metric"]),
        dataset_digest=str(meta["dataset_digest"]),
        gpu_seconds=float(meta["gpu_seconds"]),
        trial=trial.config.trial,
        step=int(meta["step"]),
        search=trial.config.search,
        pictures=read_pictures(loader.dataset, entries, chosen_images(found)),
        image_names=[image_name(entry) for entry in entries],
    )
