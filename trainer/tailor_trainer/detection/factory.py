"""The detector a detection trial trains, with the pretrained weights its config names."""

import logging

from tailor_contract import Hyperparameters, TrialConfig
from tailor_contract.detection_cost import DETECTION_DEFAULT_SIDE, SCRATCH_FEW_IMAGES
from tailor_trainer.data import DataConfig
from tailor_trainer.detection.model import Detector
from tailor_trainer.loop import hold_norm_statistics
from tailor_trainer.model import data_config_of, load_weights
from tailor_trainer.pretrained import backbone_data_config, load_backbone
from tailor_trainer.storage import Storage

log = logging.getLogger(__name__)

# Classification's 224 loses small objects; below FEW_IMAGES a detector trained from
# scratch learns little (the operator warns about it too).
DEFAULT_SIDE = DETECTION_DEFAULT_SIDE
FEW_IMAGES = SCRATCH_FEW_IMAGES


def create_detector(
    config: TrialConfig, hp: Hyperparameters, storage: Storage, classes: int, train_images: int
) -> tuple[Detector, DataConfig]:
    """FCOS or RetinaNet (`hp.detector`) on `config.model`. A catalogued `backbone`'s
    weights (digest checked) or the `pretrained` safetensors load strictly into the
    backbone (its classifier, absent here, is ignored); the backbone's batch norms then
    keep their pretrained statistics."""
    detector = Detector(config.model, classes, drop_path=hp.drop_path, kind=hp.detector)
    side = hp.input_size or DEFAULT_SIDE
    backbone = config.backbone
    if backbone is not None:
        load_backbone(detector.backbone, storage, backbone)
        data_config = backbone_data_config(detector.backbone, backbone, hp)
        data_config = DataConfig(side, data_config.mean, data_config.std, "bilinear", 1.0)
    else:
        if config.pretrained:
            load_weights(detector.backbone, storage, config.pretrained)
        timm_config = data_config_of(detector.backbone, side)
        data_config = DataConfig(side, timm_config.mean, timm_config.std, "bilinear", 1.0)
    detector.prune_backbone()
    if backbone is not None or config.pretrained:
        # Detection batches are small: their statistics would wreck the pretrained ones.
        hold_norm_statistics(detector.backbone)
    elif train_images < FEW_IMAGES:
        log.warning(
            "detection from scratch on %d training images: expect a weak model; give a "
            "pretrained backbone (a catalog entry, or `pretrained`)",
            train_images,
        )
    return detector, data_config
