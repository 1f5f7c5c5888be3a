"""The report in a real browser: headless Chromium renders it, every figure loads, no console output.

Skipped where Chromium is absent (``.ci/run`` installs Debian's ``chromium``).
Set ``BLEMORE_CHROMIUM`` to use another binary.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from blemore.report import write_report
from blemore.report.sample import write_sample_run

pytestmark = pytest.mark.browser


def _chromium() -> str | None:
    for candidate in (os.environ.get("BLEMORE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


CHROMIUM = _chromium()
if CHROMIUM is None:  # pragma: no cover - depends on the machine
    pytest.skip(
        "Chromium is not installed (apt-get install chromium, or set BLEMORE_CHROMIUM); "
        "the report's browser test needs it",
        allow_module_level=True,
    )


def chromium(
    page: Path, profile: Path, *args: str, width: int = 1366, height: int = 3000
) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={width},{height}",
        *args,
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = write_sample_run(tmp_path_factory.mktemp("browser") / "run", n_actors=6, n_test=20, compare=True)
    return write_report(run)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_every_figure_loads_and_console_stays_silent(page: Path, tmp_path: Path) -> None:
    done = chromium(page, tmp_path / "profile", "--dump-dom", "--virtual-time-budget=10000")
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body, done.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-ready") == "ok", attrs
    assert attrs.get("data-figures") == str(page.read_text().count("<img ")) == "12"
    assert attrs.get("data-fits-width") == "yes", "the page scrolls sideways at 1366 px"
    assert _console(done.stderr) == []


def test_screenshot_is_not_blank(page: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    done = chromium(page, tmp_path / "profile", f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (3000, 1366)
    assert pixels.std() > 20, f"screenshot looks blank (pixel std {pixels.std():.1f})"
    # Content reaches down the page: every 500-pixel band holds ink (text or figures).
    for top in range(0, 3000, 500):
        band = pixels[top : top + 500]
        assert (band < 128).mean() > 0.002, f"nothing drawn between y={top} and y={top + 500}"
    assert _console(done.stderr) == []


def test_broken_figure_is_detected_by_the_page_itself(page: Path, tmp_path: Path) -> None:
    """The readiness check must be able to fail: break one figure and it says so."""
    html = page.read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(
        re.sub(
            r'src="data:image/svg\+xml;base64,[^"]{0,40}',
            'src="data:image/svg+xml;base64,AAAA',
            html,
            count=1,
        )
    )
    done = chromium(broken, tmp_path / "profile", "--dump-dom", "--virtual-time-budget=10000")
    assert 'data-ready="broken"' in done.stdout
    assert any("figures failed to load" in line for line in _console(done.stderr))
