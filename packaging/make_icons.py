"""Render resources/icons/tandem.svg into the PNG sizes, the Windows .ico and the macOS .icns.

The generated files are committed (the bundle and the wheel need them and a build machine should not need
an SVG renderer), so this only runs when the SVG changes:

    python3 -m venv /tmp/iconvenv && /tmp/iconvenv/bin/pip install pillow
    /tmp/iconvenv/bin/python packaging/make_icons.py      # needs rsvg-convert (Debian: librsvg2-bin)

rsvg-convert renders every size from the vector (sharper small sizes than downscaling one bitmap); Pillow
writes the .ico and .icns containers and squeezes the PNGs.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SVG = ICONS / "tandem.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # Windows shell picks from these; 256 is stored as PNG
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)  # 1024 is the 512@2x Retina slot


def render(size: int) -> Image.Image:
    """One size, straight from the vector."""
    png = subprocess.run(
        ["rsvg-convert", "--width", str(size), "--height", str(size), str(SVG)],
        check=True, capture_output=True,
    ).stdout
    return Image.open(io.BytesIO(png)).convert("RGBA")


def save_png(image: Image.Image, path: Path) -> None:
    image.save(path, "PNG", optimize=True)


def main() -> int:
    if not shutil.which("rsvg-convert"):
        sys.stderr.write("make_icons: rsvg-convert not found (Debian: apt-get install librsvg2-bin)\n")
        return 1
    images = {size: render(size) for size in sorted(set(PNG_SIZES + ICO_SIZES + ICNS_SIZES))}
    for size in PNG_SIZES:
        save_png(images[size], ICONS / f"tandem-{size}.png")
    largest_ico = images[max(ICO_SIZES)]
    largest_ico.save(ICONS / "tandem.ico", format="ICO", sizes=[(s, s) for s in ICO_SIZES],
                     append_images=[images[s] for s in ICO_SIZES if s != max(ICO_SIZES)])
    largest_icns = images[max(ICNS_SIZES)]
    largest_icns.save(ICONS / "tandem.icns", format="ICNS",
                      append_images=[images[s] for s in ICNS_SIZES if s != max(ICNS_SIZES)])
    for path in sorted(ICONS.iterdir()):
        print(f"{path.name:20} {path.stat().st_size:>8} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
