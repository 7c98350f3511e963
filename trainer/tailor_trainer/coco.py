"""Parses a COCO annotation file into labelled images, recording every defect it meets.

Parsing never stops at the first defect: a user fixing a dataset wants the whole list.
Entries with a defect are left out, so the rest can still be counted and checked.
"""

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from tailor_trainer.detection.annotations import Box, image_size, parse_box, relative_units
from tailor_trainer.problems import Problems
from tailor_trainer.storage import resolve

ClassTask = Literal["classification", "multilabel", "detection"]
_SECTIONS = ("images", "annotations", "categories")


@dataclass(frozen=True)
class Category:
    id: int
    name: str


@dataclass(frozen=True)
class ImageEntry:
    id: int
    uri: str
    labels: tuple[int, ...]  # class indices (positions in the training categories)
    # Detection only: the declared size and the boxes (crowd boxes add no label).
    width: int = 0
    height: int = 0
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class CocoSplit:
    name: str  # "train" or "evaluation", for messages
    uri: str
    digest: str
    categories: tuple[Category, ...]
    images: tuple[ImageEntry, ...]  # labelled images, usable for the task
    annotations: int


def _is_int(value: Any) -> bool:
    # JSON true/false arrive as bool, which Python counts as int; an id is never a bool.
    return isinstance(value, int) and not isinstance(value, bool)


def _duplicates(ids: list[int]) -> dict[int, int]:
    return {value: n for value, n in Counter(ids).items() if n > 1}


def parse_categories(raw: list[Any], where: str, problems: Problems) -> tuple[Category, ...]:
    found: list[Category] = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or not _is_int(item.get("id")):
            problems.error("missing_field", f"{where}: categories[{position}] has no integer 'id'")
        elif not isinstance(item.get("name"), str) or not item["name"]:
            problems.error("missing_field", f"{where}: category {item['id']} has no 'name'")
        else:
            found.append(Category(item["id"], item["name"]))
    for value, n in _duplicates([c.id for c in found]).items():
        problems.error("duplicate_id", f"{where}: category id {value} appears {n} times")
    names = Counter(c.name for c in found)
    for name, n in names.items():
        if n > 1:
            problems.error("duplicate_name", f"{where}: category name {name!r} appears {n} times")
    unique: dict[int, Category] = {}
    for category in found:
        unique.setdefault(category.id, category)
    return tuple(sorted(unique.values(), key=lambda c: c.id))


def _parse_images(
    raw: list[Any],
    uri: str,
    where: str,
    problems: Problems,
    sizes: dict[int, tuple[int, int]] | None,
) -> dict[int, str]:
    """Image id -> URI; with `sizes` given (detection), the declared sizes go there and
    an image without a usable width and height is a problem."""
    images: dict[int, str] = {}
    ids: list[int] = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or not _is_int(item.get("id")):
            problems.error("missing_field", f"{where}: images[{position}] has no integer 'id'")
            continue
        name = item.get("file_name")
        if not isinstance(name, str) or not name:
            problems.error("missing_field", f"{where}: image {item['id']} has no 'file_name'")
            continue
        if sizes is not None:
            size = image_size(item)
            if size is None:
                problems.error(
                    "missing_field",
                    f"{where}: image {item['id']} needs positive integer 'width' and 'height' "
                    f"(detection boxes are checked against them)",
                )
                continue
            sizes.setdefault(item["id"], size)
        ids.append(item["id"])
        images.setdefault(item["id"], resolve(uri, name))
    for value, n in _duplicates(ids).items():
        problems.error("duplicate_id", f"{where}: image id {value} appears {n} times")
    return images


def _parse_annotations(
    raw: list[Any],
    where: str,
    images: dict[int, str],
    class_of: dict[int, int],
    problems: Problems,
    sizes: dict[int, tuple[int, int]] | None = None,
    boxes: dict[int, list[Box]] | None = None,
) -> dict[int, set[int]]:
    """Image id -> class indices; for detection (`sizes` given) the boxes go to `boxes`."""
    labels: dict[int, set[int]] = {}
    ids: list[int] = []
    relative = sizes is not None and relative_units([i for i in raw if isinstance(i, dict)])
    for position, item in enumerate(raw):
        fields = ("id", "image_id", "category_id")
        if not isinstance(item, dict) or not all(_is_int(item.get(f)) for f in fields):
            problems.error(
                "missing_field",
                f"{where}: annotations[{position}] needs integer 'id', 'image_id', 'category_id'",
            )
            continue
        ids.append(item["id"])
        if item["image_id"] not in images:
            problems.error(
                "unknown_image",
                f"{where}: annotation {item['id']} points at unknown image {item['image_id']}",
            )
        elif item["category_id"] not in class_of:
            problems.error(
                "unknown_category",
                f"{where}: annotation {item['id']} points at unknown category "
                f"{item['category_id']}",
            )
        elif sizes is not None and boxes is not None:
            label = class_of[item["category_id"]]
            size = sizes[item["image_id"]]
            box = parse_box(item, label, size, relative, where, problems)
            if box is not None:
                boxes.setdefault(item["image_id"], []).append(box)
                if not box.crowd:
                    labels.setdefault(item["image_id"], set()).add(label)
        else:
            labels.setdefault(item["image_id"], set()).add(class_of[item["category_id"]])
    for value, n in _duplicates(ids).items():
        problems.error("duplicate_id", f"{where}: annotation id {value} appears {n} times")
    return labels


def load_json(data: bytes, where: str, problems: Problems) -> dict[str, list[Any]] | None:
    """The three COCO sections, or None (with the problem recorded) when unusable."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        problems.error("invalid_json", f"{where}: not UTF-8 text ({error.reason})")
        return None
    except json.JSONDecodeError as error:
        problems.error(
            "invalid_json", f"{where}: {error.msg} at line {error.lineno} column {error.colno}"
        )
        return None
    if not isinstance(document, dict):
        problems.error("invalid_json", f"{where}: the top level must be a JSON object")
        return None
    sections: dict[str, list[Any]] = {}
    for section in _SECTIONS:
        if not isinstance(document.get(section), list):
            state = "missing" if section not in document else "not a list"
            problems.error("missing_field", f"{where}: top-level '{section}' is {state}")
        else:
            sections[section] = document[section]
    return sections if len(sections) == len(_SECTIONS) else None


def parse_split(
    name: str,
    uri: str,
    data: bytes,
    task: ClassTask,
    problems: Problems,
    classes: tuple[Category, ...] | None = None,
) -> CocoSplit | None:
    """Parse one annotation file; classes are the training categories (None: this is train)."""
    where = f"{name} {uri}"
    sections = load_json(data, where, problems)
    if sections is None:
        return None
    categories = parse_categories(sections["categories"], where, problems)
    if classes is None:
        classes = categories
    else:
        _compare_categories(categories, classes, where, problems)
    class_of = {category.id: index for index, category in enumerate(classes)}
    detection = task == "detection"
    sizes: dict[int, tuple[int, int]] | None = {} if detection else None
    boxes: dict[int, list[Box]] = {}
    images = _parse_images(sections["images"], uri, where, problems, sizes)
    labels = _parse_annotations(
        sections["annotations"], where, images, class_of, problems, sizes, boxes
    )
    entries: list[ImageEntry] = []
    for image_id, image_uri in images.items():
        if sizes is not None:
            # Images without boxes are negatives: they teach the detector the background.
            found = tuple(sorted(labels.get(image_id, ())))
            width, height = sizes[image_id]
            owned = tuple(boxes.get(image_id, ()))
            entries.append(ImageEntry(image_id, image_uri, found, width, height, owned))
            continue
        found = tuple(sorted(labels.get(image_id, ())))
        if task == "classification" and len(found) > 1:
            names = ", ".join(classes[i].name for i in found)
            problems.error(
                "multiple_labels",
                f"{where}: image {image_id} has {len(found)} categories ({names})",
            )
            continue
        if task == "classification" and not found:
            problems.warn("unlabeled_image", f"{where}: image {image_id} has no annotation")
            continue
        # Multilabel: an image with no category is a valid negative for every class.
        entries.append(ImageEntry(image_id, image_uri, found))
    return CocoSplit(
        name=name,
        uri=uri,
        digest=hashlib.sha256(data).hexdigest(),
        categories=categories,
        images=tuple(entries),
        annotations=len(sections["annotations"]),
    )


def _compare_categories(
    found: tuple[Category, ...], classes: tuple[Category, ...], where: str, problems: Problems
) -> None:
    known = {c.id: c.name for c in classes}
    for category in found:
        if category.id not in known:
            problems.error(
                "category_mismatch",
                f"{where}: category {category.id} ({category.name!r}) is not in training",
            )
        elif known[category.id] != category.name:
            problems.error(
                "category_mismatch",
                f"{where}: category {category.id} is {category.name!r} here but "
                f"{known[category.id]!r} in training",
            )
