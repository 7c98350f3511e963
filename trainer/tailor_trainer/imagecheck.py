"""Fetches and decodes every image of a dataset, for validation: what is missing, what
fails to decode, and the size and pixel statistics the budget estimate needs."""

import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from tailor_trainer.pixels import thumbnail
from tailor_trainer.problems import Problems
from tailor_trainer.storage import ObjectNotFound, Storage

# Pixel statistics need no detail: a thumbnail keeps them and saves memory.
_STATS_SIDE = 32


@dataclass
class ImageStats:
    decoded: int = 0
    width_sum: float = 0.0
    height_sum: float = 0.0
    pixel_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))
    pixel_square_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))
    pixel_count: int = 0
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # URI -> (w, h), upright
    # URI -> the pixel reference's thumbnail (tailor_trainer.pixels), for the URIs asked
    thumbnails: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, width: int, height: int, pixels: np.ndarray) -> None:
        self.decoded += 1
        self.width_sum += width
        self.height_sum += height
        flat = pixels.reshape(-1, 3).astype(np.float64) / 255.0
        self.pixel_sum += flat.sum(axis=0)
        self.pixel_square_sum += np.square(flat).sum(axis=0)
        self.pixel_count += flat.shape[0]

    @property
    def mean_width(self) -> float:
        return self.width_sum / self.decoded if self.decoded else 0.0

    @property
    def mean_height(self) -> float:
        return self.height_sum / self.decoded if self.decoded else 0.0

    def pixel_mean_std(self) -> tuple[list[float], list[float]] | None:
        if not self.pixel_count:
            return None
        mean = self.pixel_sum / self.pixel_count
        variance = np.maximum(self.pixel_square_sum / self.pixel_count - np.square(mean), 0.0)
        return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in np.sqrt(variance)]


# EXIF orientations that turn the image a quarter: width and height swap when applied.
_QUARTER_TURNS = (5, 6, 7, 8)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) once the EXIF orientation is applied, as the trainer sees it."""
    width, height = image.size
    if image.getexif().get(0x0112) in _QUARTER_TURNS:
        return height, width
    return width, height


def decode(data: bytes) -> tuple[int, int, np.ndarray]:
    """(width, height, RGB thumbnail), the size with the EXIF orientation applied;
    raises whatever PIL raises for a bad image."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = upright_size(image)
        # JPEG can decode at a reduced scale; the whole entropy stream is still read,
        # so truncation and corruption are still found.
        image.draft("RGB", (_STATS_SIDE * 2, _STATS_SIDE * 2))
        image.load()
        rgb = image.convert("RGB")
        rgb.thumbnail((_STATS_SIDE, _STATS_SIDE))
        return width, height, np.asarray(rgb)


def _check_one(storage: Storage, uri: str) -> tuple[str, tuple[int, int, np.ndarray] | str]:
    try:
        data = storage.read(uri)
    except ObjectNotFound as error:
        return "missing", str(error)
    try:
        return "ok", decode(data)
    except Exception as error:  # PIL raises many types for bad data; any is a bad image
        return "undecodable", f"{type(error).__name__}: {error}"


def check_images(
    storage: Storage,
    uris: Iterable[str],
    problems: Problems,
    workers: int = 16,
    thumbnails_of: frozenset[str] = frozenset(),
) -> ImageStats:
    """Decode every image (threads: the time is I/O and C decoding, which release the GIL);
    keep the pixel reference's thumbnail of those in `thumbnails_of`."""
    stats = ImageStats()
    unique = sorted(set(uris))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for uri, (status, value) in zip(
            unique, pool.map(lambda u: _check_one(storage, u), unique), strict=True
        ):
            if status == "missing":
                problems.error("missing_image", f"{uri}: not found in storage")
            elif status == "undecodable":
                problems.error("undecodable_image", f"{uri}: {value}")
            else:
                assert not isinstance(value, str)
                stats.add(*value)
                stats.sizes[uri] = (value[0], value[1])
                if uri in thumbnails_of:
                    stats.thumbnails[uri] = thumbnail(value[2])
    return stats
