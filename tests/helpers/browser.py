"""Headless Chromium (Debian's package) for the browser tests, and reading its PNG screenshots.

Chromium runs with a fresh profile, no sandbox (tests run as root in CI), no GPU and nothing that
reaches the network on its own: it loads only the loopback page it is given.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def screenshot(url: str, path: Path, width: int = 1100, height: int = 800, timeout: float = 60.0) -> Path:
    """A PNG of `url` as Chromium renders it, written to `path`."""
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium"
    with tempfile.TemporaryDirectory(prefix="gkbroad-chromium-") as profile:
        done = subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={path}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    assert path.exists() and path.stat().st_size > 0, (
        f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    )
    return path


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA PNG without interlacing."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    offset, idat, header = 8, [], None
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        offset += length + 12
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG: depth {depth}, colour type {colour}"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        previous = line
        rgb = line if channels == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3)
        rows.append(bytes(rgb))
    return width, height, rows


def pixels_near(rows: list[bytes], colour: str, tolerance: int = 30) -> int:
    """How many pixels are within `tolerance` (per channel) of `colour` ("#rrggbb")."""
    target = bytes.fromhex(colour.lstrip("#"))
    count = 0
    for row in rows:
        for x in range(0, len(row), 3):
            if all(abs(row[x + c] - target[c]) <= tolerance for c in range(3)):
                count += 1
    return count
