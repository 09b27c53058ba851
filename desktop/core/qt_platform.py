"""Before the window: can Qt's xcb platform plugin load on this Linux machine, and if not, what to install.

On a fresh Debian or Ubuntu the PySide6 wheel brings Qt but not the X11 helper libraries its xcb plugin
links against (libxcb-cursor0, libxcb-icccm4, ...). Qt then aborts the process with "Could not load the Qt
platform plugin xcb", a message that names neither the missing library nor the package. Qt's abort can't be
caught in-process, so ``tandem`` checks first, without importing Qt: it reads the plugin's ELF dependency
list (DT_NEEDED) and asks the dynamic loader for each library that Qt doesn't ship itself. Missing ones are
named with the Debian package that provides them, in one line. No Qt import here (this is core).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import struct
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from desktop.core.errors import QtPlatformError

# The libraries Qt's xcb plugin needs beyond Qt itself, by soname, with the Debian/Ubuntu package names
# where the generic rule (debian_package) would guess wrong.
_PACKAGES = {"libglib-2.0.so.0": "libglib2.0-0", "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6"}
PT_LOAD, PT_DYNAMIC, DT_NULL, DT_NEEDED, DT_STRTAB = 1, 2, 0, 1, 5


def needed_libraries(path: Path) -> list[str]:
    """The sonames an ELF shared object asks the loader for (its DT_NEEDED entries), in order.

    Raises ValueError for a file that is not a 64- or 32-bit ELF shared object.
    """
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path} is not an ELF file")
    bits64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if bits64:
        phoff, phentsize, phnum = struct.unpack_from(end + "Q", data, 0x20)[0], *struct.unpack_from(end + "HH", data, 0x36)
        ph_fmt, dyn_fmt = end + "IIQQQQQQ", end + "qQ"
    else:
        phoff, phentsize, phnum = struct.unpack_from(end + "I", data, 0x1C)[0], *struct.unpack_from(end + "HH", data, 0x2A)
        ph_fmt, dyn_fmt = end + "IIIIIIII", end + "iI"
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None  # (offset, size)
    for i in range(phnum):
        fields = struct.unpack_from(ph_fmt, data, phoff + i * phentsize)
        if bits64:
            p_type, _flags, offset, vaddr, _paddr, filesz = fields[:6]
        else:
            p_type, offset, vaddr, _paddr, filesz = fields[:5]
        if p_type == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return []
    entry = struct.calcsize(dyn_fmt)
    needed: list[int] = []
    strtab_vaddr = None
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], entry):
        tag, value = struct.unpack_from(dyn_fmt, data, pos)
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            needed.append(value)
        elif tag == DT_STRTAB:
            strtab_vaddr = value
    if strtab_vaddr is None:
        return []
    strtab = next((off + strtab_vaddr - va for va, off, size in loads if va <= strtab_vaddr < va + size), None)
    if strtab is None:
        return []
    return [data[strtab + n: data.index(b"\0", strtab + n)].decode("ascii", "replace") for n in needed]


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname``: libxcb-cursor.so.0 -> libxcb-cursor0,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0 (Debian's rule: a dash before the version when the name
    ends in a digit)."""
    if soname in _PACKAGES:
        return _PACKAGES[soname]
    m = re.fullmatch(r"(lib.+?)\.so\.(\d+).*", soname)
    if not m:
        return soname
    name, version = m.group(1).lower(), m.group(2)
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_libraries(plugin: Path, qt_lib_dir: Path, can_load: Callable[[str], bool] = _loads) -> list[str]:
    """Sonames the plugin (and Qt's own libraries it pulls in, one level) need that the loader can't find.

    Libraries Qt ships in ``qt_lib_dir`` are followed, not probed: their own system dependencies count too
    (libQt6XcbQpa is where most of the xcb-util libraries are needed).
    """
    missing: list[str] = []
    seen: set[str] = set()
    todo = [plugin]
    while todo:
        for soname in needed_libraries(todo.pop(0)):
            if soname in seen:
                continue
            seen.add(soname)
            shipped = qt_lib_dir / soname
            if shipped.exists():
                if soname.startswith("libQt6Xcb"):  # the X11 glue; Qt's core libraries load for any platform
                    todo.append(shipped)
            elif not can_load(soname):
                missing.append(soname)
    return missing


def wants_xcb(env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will try the xcb plugin: Linux, and no other platform asked for (an explicit
    QT_QPA_PLATFORM of offscreen/wayland/...), and not a Wayland session (Qt 6 prefers wayland there)."""
    if not platform.startswith("linux"):
        return False
    asked = env.get("QT_QPA_PLATFORM", "").strip()
    if asked:
        return asked.split(";")[0].split(":")[0] == "xcb"
    return not (env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE", "").lower() == "wayland")


def pyside_qt_dir() -> Path | None:
    """PySide6's Qt folder (plugins/, lib/) found without importing PySide6."""
    spec = importlib.util.find_spec("PySide6")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "Qt").is_dir():
            return Path(location) / "Qt"
    return None


def check_qt_platform(env: Mapping[str, str] | None = None, qt_dir: Path | None = None,
                      can_load: Callable[[str], bool] | None = None) -> None:
    """Raise QtPlatformError naming what to install when Qt's xcb plugin can't load; else return.

    Silent when xcb is not going to be used, when the plugin is not where the wheel puts it (a frozen
    build, a system Qt), or when its file can't be read: then Qt's own message is all there is.
    """
    env = os.environ if env is None else env
    if not wants_xcb(env):
        return
    qt_dir = qt_dir or pyside_qt_dir()
    if qt_dir is None:
        return
    plugin = qt_dir / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        return
    try:
        missing = missing_libraries(plugin, qt_dir / "lib", can_load or _loads)
    except (OSError, ValueError, struct.error):
        return
    if missing:
        raise QtPlatformError(missing, sorted(dict.fromkeys(debian_package(m) for m in missing)))
