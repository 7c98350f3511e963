"""crds/ is the single source of truth: every copy of the CRD elsewhere (the Helm
chart's) must be identical to it, byte for byte."""

from pathlib import Path

import pytest
import yaml

from tests.unit.operator.crd import CRD_PATH, ROOT

CRD_NAME = "trainingjobs.tailor.dev"


def copies() -> list[Path]:
    found = []
    for path in sorted((ROOT / "charts").rglob("*.yaml")):
        text = path.read_text(errors="replace")
        if CRD_NAME not in text or "CustomResourceDefinition" not in text:
            continue
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            documents = []  # a Helm template, not plain YAML: compared as text below
        if not documents or any(
            isinstance(d, dict) and (d.get("metadata") or {}).get("name") == CRD_NAME
            for d in documents
        ):
            found.append(path)
    return found


@pytest.mark.parametrize("copy", copies(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_copy_of_the_crd_is_identical_to_crds(copy: Path) -> None:
    assert copy.read_bytes() == CRD_PATH.read_bytes(), f"{copy} differs: copy it from {CRD_PATH}"
