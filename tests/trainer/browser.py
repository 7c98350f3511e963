"""Headless Chromium for the tests: render a page, check its images and console, and
take a screenshot. Debian's `chromium` package; CI installs it."""

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL = "apt-get install -y --no-install-recommends chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
)
# Added to a copy of the page: after `load`, records on <body> whether every image
# decoded (complete, with a width), and the alt text of those that did not.
CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-images-ok", broken.length === 0 ? "yes" : "no");
  document.body.setAttribute("data-broken", broken.map(function (i) { return i.alt; }).join("|"));
});
</script>"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    found = chromium()
    if found is None:
        pytest.skip(f"chromium is not installed (CI installs it): {INSTALL}")
    return found


@dataclass(frozen=True)
class Rendered:
    dom: str  # the DOM after load, of the copy with CHECK_SCRIPT
    body: dict[str, str]  # attributes of <body> in that DOM
    console: list[str]  # the page's console lines (any: the report has no script)
    screenshot: Path

    @property
    def images_ok(self) -> bool:
        return self.body.get("data-images-ok") == "yes"

    @property
    def images(self) -> int:
        return int(self.body.get("data-images", "0"))


def _run(binary: str, arguments: list[str], profile: Path, timeout: float) -> tuple[str, str]:
    command = [binary, *FLAGS, f"--user-data-dir={profile}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout, done.stderr


def render(
    page: Path, screenshot: Path, width: int = 1280, height: int = 2400, timeout: float = 120
) -> Rendered:
    """Loads page twice in headless Chromium: a checked copy for its DOM and console,
    the page itself for a screenshot of width x height pixels."""
    binary = require_chromium()
    html = page.read_text(encoding="utf-8")
    if "</body>" not in html:
        raise AssertionError(f"{page} has no </body>")
    checked = page.with_name(f".{page.stem}.checked.html")
    checked.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>", 1), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="tailor-chromium-") as profile:
        dom, log = _run(
            binary,
            [
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=10000",
                "--dump-dom",
                checked.resolve().as_uri(),
            ],
            Path(profile),
            timeout,
        )
        _run(
            binary,
            [
                f"--screenshot={screenshot}",
                f"--window-size={width},{height}",
                "--hide-scrollbars",
                "--virtual-time-budget=10000",
                page.resolve().as_uri(),
            ],
            Path(profile),
            timeout,
        )
    checked.unlink()
    match = re.search(r"<body([^>]*)>", dom)
    body = dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1))) if match else {}
    console = [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return Rendered(dom=dom, body=body, console=console, screenshot=screenshot)


def distinct_colours(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24)
    return len(colours or [])
