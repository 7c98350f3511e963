"""Collects dataset problems: every one counted by kind, the first few kept in words."""

from collections import Counter
from dataclasses import dataclass, field

# Kind -> plural noun phrase for summaries ("3 missing images").
KINDS: dict[str, str] = {
    "invalid_json": "unreadable or invalid JSON files",
    "missing_field": "missing or mistyped COCO fields",
    "duplicate_id": "duplicate ids",
    "duplicate_name": "duplicate category names",
    "unknown_image": "annotations pointing at unknown images",
    "unknown_category": "annotations pointing at unknown categories",
    "multiple_labels": "images with several categories in a classification dataset",
    "category_mismatch": "evaluation categories that differ from training",
    "missing_image": "images missing from storage",
    "undecodable_image": "images that fail to decode",
    "too_few_images": "classes with too few images",
    "empty_split": "empty splits",
    "bad_box": "detection boxes that are not four finite numbers with a positive size",
    "box_outside_image": "detection boxes more than a pixel outside their image",
    "image_size_mismatch": "images whose declared width and height are not the image's",
    # Warnings: reported, never fatal.
    "unlabeled_image": "images without a category (left out)",
    "class_missing_from_evaluation": "classes absent from the evaluation split",
}


@dataclass
class Problems:
    """Errors make a dataset corrupt; warnings are reported and tolerated."""

    examples_per_kind: int = 5
    errors: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)
    warning_examples: list[str] = field(default_factory=list)

    def error(self, kind: str, message: str) -> None:
        self._add(kind, message, self.errors, self.error_examples)

    def warn(self, kind: str, message: str) -> None:
        self._add(kind, message, self.warnings, self.warning_examples)

    def _add(self, kind: str, message: str, counts: Counter[str], examples: list[str]) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown problem kind {kind!r}")
        counts[kind] += 1
        # Keep a few of each kind, so one flood (10,000 missing images) hides no other kind.
        if counts[kind] <= self.examples_per_kind:
            examples.append(f"{kind}: {message}")

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        parts = [f"{count} {KINDS[kind]}" for kind, count in sorted(self.errors.items())]
        return "; ".join(parts)
