"""hack/disk-check.sh: a long command stops at once, naming what to free, instead of
running out of disk midway."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).parents[3] / "hack" / "disk-check.sh"


def check(need_gib: int, path: Path) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [str(SCRIPT), str(need_gib), "the tests", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_enough_free_disk_passes_silently(tmp_path: Path) -> None:
    result = check(0, tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_too_little_free_disk_stops_and_says_how_much_is_needed_and_free(
    tmp_path: Path,
) -> None:
    free_gib = shutil.disk_usage(tmp_path).free // 2**30
    result = check(free_gib + 10, tmp_path)
    assert result.returncode == 1
    said = re.search(
        rf"not enough free disk for the tests: {free_gib + 10} GiB needed under "
        rf"{re.escape(str(tmp_path))}, (\d+) GiB free\.",
        result.stderr,
    )
    assert said, result.stderr
    assert abs(int(said.group(1)) - free_gib) <= 1  # other writers may move it meanwhile
    assert "pytest-of-" in result.stderr  # where to look
