"""Build hook: the wheel carries the top-level ``resources/`` folder as ``desktop/resources``.

Everything else about the package is declared in pyproject.toml. ``resources/`` sits at the top of the
repository (the PyInstaller bundle and a checkout use it there), so setuptools' package discovery cannot
see it as package data; this copies it in when a wheel is built. An editable install skips it:
``desktop.core.paths.resources_dir()`` finds the checkout's own folder.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESOURCES = Path(__file__).resolve().parent / "resources"


class BuildPyWithResources(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode or not RESOURCES.is_dir():
            return
        self.copy_tree(str(RESOURCES), str(Path(self.build_lib) / "desktop" / "resources"))


setup(cmdclass={"build_py": BuildPyWithResources})
