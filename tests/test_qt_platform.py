"""`tandem` names the system libraries Qt's xcb plugin lacks, and their packages, before Qt aborts."""

from __future__ import annotations

import sys

import pytest

from desktop.core import qt_platform
from desktop.core.errors import QtPlatformError
from desktop.core.qt_platform import (
    check_qt_platform,
    debian_package,
    missing_libraries,
    needed_libraries,
    pyside_qt_dir,
    wants_xcb,
)

QT = pyside_qt_dir()
PLUGIN = QT / "plugins" / "platforms" / "libqxcb.so" if QT else None
linux_wheel = pytest.mark.skipif(PLUGIN is None or not PLUGIN.is_file(), reason="needs PySide6's xcb plugin (Linux)")
XCB_ENV = {"DISPLAY": ":0"}


@linux_wheel
def test_the_xcb_plugins_dependencies_are_read_from_its_elf_header():
    needed = needed_libraries(PLUGIN)
    assert "libQt6XcbQpa.so.6" in needed and "libc.so.6" in needed
    # the X11 glue library Qt ships carries most of the xcb-util dependencies
    glue = needed_libraries(QT / "lib" / "libQt6XcbQpa.so.6")
    assert {"libxcb.so.1", "libxcb-cursor.so.0", "libxkbcommon-x11.so.0"} <= set(glue)


def test_a_file_that_is_not_elf_is_refused(tmp_path):
    path = tmp_path / "libqxcb.so"
    path.write_bytes(b"not a library")
    with pytest.raises(ValueError):
        needed_libraries(path)


@linux_wheel
def test_only_what_the_loader_cannot_find_is_reported_through_qts_own_glue_library():
    absent = {"libxcb-cursor.so.0", "libxcb-icccm.so.4"}
    probed: list[str] = []

    def can_load(soname: str) -> bool:
        probed.append(soname)
        return soname not in absent

    assert sorted(missing_libraries(PLUGIN, QT / "lib", can_load)) == sorted(absent)
    assert not any(name.startswith("libQt6") for name in probed)  # Qt's own libraries are followed, not probed
    assert len(probed) == len(set(probed))


@linux_wheel
def test_check_names_the_debian_packages_in_one_line():
    absent = {"libxcb-cursor.so.0", "libxkbcommon-x11.so.0"}
    with pytest.raises(QtPlatformError) as info:
        check_qt_platform(XCB_ENV, can_load=lambda soname: soname not in absent)
    assert info.value.packages == ["libxcb-cursor0", "libxkbcommon-x11-0"]
    text = str(info.value)
    assert "\n" not in text
    assert "sudo apt install libxcb-cursor0 libxkbcommon-x11-0" in text
    assert "libxcb-cursor.so.0" in text


@linux_wheel
def test_check_is_silent_when_everything_loads_or_another_platform_is_asked_for():
    check_qt_platform(XCB_ENV, can_load=lambda soname: True)
    check_qt_platform({"QT_QPA_PLATFORM": "offscreen"}, can_load=lambda soname: False)


def test_check_is_silent_without_the_plugin_file(tmp_path):
    check_qt_platform(XCB_ENV, qt_dir=tmp_path, can_load=lambda soname: False)


@pytest.mark.parametrize(("soname", "package"), [
    ("libxcb-cursor.so.0", "libxcb-cursor0"),
    ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libxcb.so.1", "libxcb1"),
    ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libEGL.so.1", "libegl1"),
    ("libglib-2.0.so.0", "libglib2.0-0"),
])
def test_debian_package_names_follow_debians_rule(soname, package):
    assert debian_package(soname) == package


@pytest.mark.parametrize(("env", "platform", "expected"), [
    ({}, "linux", True),
    ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux", False),
    ({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}, "linux", False),
    ({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "x11"}, "linux", True),
    ({}, "darwin", False),
    ({}, "win32", False),
])
def test_xcb_is_checked_only_where_qt_would_use_it(env, platform, expected):
    assert wants_xcb(env, platform) is expected


@linux_wheel
def test_tandem_says_what_to_install_and_exits_1_before_creating_qt(monkeypatch, capsys):
    from desktop import app

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(qt_platform, "_loads", lambda soname: soname != "libxcb-cursor.so.0")
    monkeypatch.setattr(app, "create_application", lambda argv=None: pytest.fail("Qt must not be started"))
    assert app.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("tandem: error: ") and "sudo apt install libxcb-cursor0" in err
    assert sys.platform.startswith("linux")
