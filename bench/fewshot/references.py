"""The simple references every method is held against, each fitted on exactly the N
labelled images per class the search gets, scored on the same held-out test split:
the majority class, logistic regression on raw pixels, and a linear probe on the frozen
catalogued backbone (written here independently of the trainer's probe recipe)."""

from pathlib import Path

import numpy as np

from bench.fewshot.data import FewShot
from tailor_contract import PretrainedBackbone


def majority(data: FewShot) -> float:
    _, train = data.arrays(data.train_ids)
    _, test = data.arrays(data.test_ids)
    return float(np.mean(test == np.bincount(train).argmax()))


def logistic_regression(data: FewShot) -> float:
    from sklearn.linear_model import LogisticRegression

    images, labels = data.arrays(data.train_ids)
    test_images, test_labels = data.arrays(data.test_ids)
    model = LogisticRegression(max_iter=5000)
    model.fit(images.reshape(len(images), -1) / 255.0, labels)
    guesses = model.predict(test_images.reshape(len(test_images), -1) / 255.0)
    return float(np.mean(guesses == test_labels))


def _features(entry: PretrainedBackbone, images: np.ndarray, side: int) -> np.ndarray:
    import timm
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file

    model = timm.create_model(entry.architecture, pretrained=False, num_classes=0)
    state = load_file(str(Path(entry.weights)))
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("classifier")})
    model.eval()
    mean = torch.tensor(entry.mean).view(1, 3, 1, 1)
    std = torch.tensor(entry.std).view(1, 3, 1, 1)
    found = []
    with torch.no_grad():
        for start in range(0, len(images), 64):
            batch = torch.from_numpy(images[start : start + 64]).float().div(255)
            batch = batch.unsqueeze(1).expand(-1, 3, -1, -1)
            batch = F.interpolate(batch, size=(side, side), mode="bicubic", align_corners=False)
            found.append(model((batch.clamp(0, 1) - mean) / std).numpy())
    return np.concatenate(found)


def frozen_probe(data: FewShot, entry: PretrainedBackbone, side: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    images, labels = data.arrays(data.train_ids)
    test_images, test_labels = data.arrays(data.test_ids)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    probe.fit(_features(entry, images, side), labels)
    guesses = probe.predict(_features(entry, test_images, side))
    return float(np.mean(guesses == test_labels))
