"""The launcher entry, the AppStream metadata and the icons: valid for the tools that read them.

``desktop-file-validate`` (Debian: desktop-file-utils) and ``appstreamcli`` (Debian: appstream) are
what distributions and software centres run; scripts/test.sh installs them in CI. Without them those two
tests skip and say so; every other check here needs nothing but Python.
"""

from __future__ import annotations

import configparser
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from desktop import __version__
from desktop.core.paths import APP_ID, resources_dir

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
DESKTOP_FILE = RESOURCES / f"{APP_ID}.desktop"
METAINFO = RESOURCES / f"{APP_ID}.metainfo.xml"
ICONS = RESOURCES / "icons"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install -y {package})")
    return path


def _problems(output: str) -> list[str]:
    """Validator lines that are errors or warnings (hints and pedantic notes are style advice)."""
    return [line for line in output.splitlines()
            if "error" in line.lower() or "warning" in line.lower() or line.startswith(("E:", "W:"))]


def test_checkout_resources_are_the_ones_the_app_uses():
    assert resources_dir() == RESOURCES


def test_desktop_file_validates():
    tool = _tool("desktop-file-validate", "desktop-file-utils")
    result = subprocess.run([tool, str(DESKTOP_FILE)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert _problems(output) == [], output


def test_metainfo_validates():
    tool = _tool("appstreamcli", "appstream")
    result = subprocess.run([tool, "validate", "--no-net", "--explain", str(METAINFO)],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert _problems(output) == [], output


def test_desktop_file_names_the_app_and_its_icon():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive in desktop files
    entry.read(DESKTOP_FILE, encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Name"] == "Tandem"
    assert section["Icon"] == APP_ID  # installed as hicolor/<size>/apps/<APP_ID>.png by install.sh
    # install.sh rewrites exactly these two lines to the installed path
    assert section["Exec"] == "tandem"
    assert section["TryExec"] == "tandem"
    assert section["Terminal"] == "false"


def test_metainfo_matches_the_app():
    root = ET.parse(METAINFO).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == DESKTOP_FILE.name
    assert root.find("launchable").get("type") == "desktop-id"
    versions = [r.get("version") for r in root.iter("release")]
    assert versions and versions[0] == __version__, "add a <release> for the new version to the metainfo"
    assert root.find("provides/binary").text == "tandem"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("size", PNG_SIZES)
def test_png_icon_has_its_size(size):
    path = ICONS / f"tandem-{size}.png"
    assert _png_size(path) == (size, size)
    assert path.stat().st_size < 64 * 1024, "keep the icons small: run packaging/make_icons.py"


def test_svg_icon_is_square_vector():
    root = ET.parse(ICONS / "tandem.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    _, _, width, height = (float(v) for v in root.get("viewBox").split())
    assert width == height
    assert not any(el.tag.endswith("image") for el in root.iter()), "the SVG must not embed bitmaps"


def test_ico_holds_the_windows_sizes():
    data = (ICONS / "tandem.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind) == (0, 1), "not an .ico file"
    sizes = set()
    for i in range(count):
        width, height, _, _, _, _, length, offset = struct.unpack("<BBBBHHII", data[6 + 16 * i: 22 + 16 * i])
        assert offset + length <= len(data)
        sizes.add((width or 256, height or 256))  # 0 means 256 in an icon directory
    assert {(s, s) for s in (16, 24, 32, 48, 256)} <= sizes


def test_icns_holds_the_retina_sizes():
    data = (ICONS / "tandem.icns").read_bytes()
    assert data[:4] == b"icns"
    assert struct.unpack(">I", data[4:8])[0] == len(data)
    kinds, offset = set(), 8
    while offset < len(data):
        kind, length = data[offset:offset + 4], struct.unpack(">I", data[offset + 4: offset + 8])[0]
        assert length > 8
        kinds.add(kind.decode("ascii"))
        offset += length
    assert offset == len(data)
    # 128, 256, 512, 1024 (512@2x) and 32/64 (16@2x, 32@2x): what Finder and the Dock draw
    assert {"ic07", "ic08", "ic09", "ic10", "ic11", "ic12"} <= kinds
