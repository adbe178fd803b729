"""The HTML report from hand-written results: pure, no backend. The last test
renders the page in headless Chromium and reads the screenshot's pixels."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from rig.report import write_reports
from tests.report_runs import HEADER, sample_results

FINISHED_RGB = (0x4A, 0x90, 0xD9)  # the template's colour of an attempt that finished
KILLED_RGB = (0xE3, 0x9B, 0x2F)  # ... and of a killed one


@pytest.fixture
def report(tmp_path: Path) -> Path:
    results, skipped = sample_results()
    return write_reports(tmp_path / "report", results, skipped, HEADER) / "report.html"


def _unfilter(kind: int, line: bytearray, above: bytes, bpp: int) -> None:
    """Undo one PNG row filter in place (PNG spec 9.2: None, Sub, Up, Average, Paeth)."""
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = above[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            corner = above[i - bpp] if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            line[i] = (
                line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)
            ) & 0xFF


def read_png(path: Path) -> tuple[int, int, list[bytes], int]:
    """Width, height, rows of pixels and bytes per pixel of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, header, compressed = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        header = chunk if kind == b"IHDR" else header
        compressed += chunk if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and not interlace, "only 8-bit RGB(A), not interlaced"
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(compressed), width * bpp + 1
    rows, above = [], bytes(width * bpp)
    for y in range(height):
        line = bytearray(raw[y * stride + 1 : (y + 1) * stride])
        if raw[y * stride]:
            _unfilter(raw[y * stride], line, above, bpp)
        rows.append(bytes(line))
        above = rows[-1]
    return width, height, rows, bpp


def _pixels_of(rgb: tuple[int, int, int], rows: list[bytes], bpp: int) -> tuple[int, int, int]:
    """How many pixels have this colour (give or take 3 per channel), leftmost and rightmost x."""
    count, xs = 0, []
    for row in rows:
        for x in range(len(row) // bpp):
            if all(abs(row[x * bpp + c] - rgb[c]) <= 3 for c in range(3)):
                count += 1
                xs.append(x)
    return count, min(xs, default=-1), max(xs, default=-1)


def _browser() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    why = "chromium is not installed (apt-get install chromium, or scripts/setup.sh)"
    # Where the picture must be checked, a missing browser is a failure, not a skip.
    if os.environ.get("RIG_REQUIRE_BROWSER") == "1":
        pytest.fail(f"RIG_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


def test_the_browser_draws_the_lanes_across_the_page(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    command = [
        _browser(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
        f"--screenshot={shot}",
        report.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert shot.exists(), f"chromium made no screenshot (exit {done.returncode}): {done.stderr}"
    if os.environ.get("RIG_KEEP_SCREENSHOT"):  # to look at it: RIG_KEEP_SCREENSHOT=out.png
        shutil.copy(shot, os.environ["RIG_KEEP_SCREENSHOT"])
    width, _height, rows, bpp = read_png(shot)
    finished, finished_left, finished_right = _pixels_of(FINISHED_RGB, rows, bpp)
    killed, killed_left, _ = _pixels_of(KILLED_RGB, rows, bpp)
    # The legend's swatches are 12 px squares; the bars are far bigger than that.
    assert finished > 600, f"only {finished} pixels of the finished-bar colour"
    assert killed > 600, f"only {killed} pixels of the killed-bar colour"
    # The SVG scales to the page: attempt 2 ends near the right edge, attempt 1 starts near
    # the left one.
    assert finished_right > 0.6 * width, f"bars end at x={finished_right} of {width}"
    assert min(killed_left, finished_left) < 0.25 * width
