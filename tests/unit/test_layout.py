"""The package layout keeps the standard library's `operator` reachable."""

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stdlib_operator_wins_even_with_the_checkout_on_the_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("operator", None)
    module = importlib.import_module("operator")
    assert module.__file__ is not None
    assert not module.__file__.startswith(str(ROOT))
    assert module.itemgetter(1)([0, 1]) == 1
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_operator_package_has_its_own_import_name():
    import tailor_operator

    assert Path(tailor_operator.__file__).parent == ROOT / "operator" / "tailor_operator"
