"""``llama-server`` built from the llama.cpp vendored in the installed llama-cpp-python, for the remote tests.

The remote-model tests need a real llama.cpp server on loopback. Building the one inside the installed
llama-cpp-python (rather than downloading some release) means the server runs the very same llama.cpp as the
local engine, so the two can be compared token for token. ``bench.reference`` already knows how to fetch that
source and configure it the way the wheel was built; this module reuses it and builds only the
``llama-server`` target, once per version and flag set, into a cache outside the repository
(``TANDEM_SERVER_CACHE``, default ``~/.cache/tandem/llama-server``).

Run ``python -m bench.llama_server`` to build (or find) it; it prints the binary's path and the build time.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.reference import (
    Log,
    ReferenceUnavailable,
    _binary_in,
    build_dir_for,
    build_target,
    cmake_flags,
    installed_version,
)


@dataclass(frozen=True)
class ServerBuild:
    binary: Path
    version: str
    build_s: float | None  # None when the cached binary was reused


def cache_dir() -> Path:
    value = os.environ.get("TANDEM_SERVER_CACHE", "").strip()
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "tandem" / "llama-server"
    path.mkdir(parents=True, exist_ok=True)
    return path


def server_flags() -> list[str]:
    """The wheel's own configure flags, with the server switched on and nothing else extra."""
    flags = [f for f in cmake_flags() if not f.startswith(("-DLLAMA_BUILD_SERVER=", "-DLLAMA_BUILD_TOOLS="))]
    return flags + ["-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON"]


def find_llama_server(cache: Path | None = None) -> Path | None:
    """The cached binary if it was built already (never builds)."""
    try:
        version = installed_version()
    except ReferenceUnavailable:
        return None
    return _binary_in(build_dir_for("llama-server", cache or cache_dir(), version, server_flags()), "llama-server")


def ensure_llama_server(cache: Path | None = None, log: Log = print, jobs: int | None = None) -> ServerBuild:
    """The cached llama-server for the installed llama-cpp-python, building it first if needed."""
    binary, _build_dir, build_s = build_target("llama-server", server_flags(), cache or cache_dir(), log, jobs)
    return ServerBuild(binary, installed_version(), build_s)


if __name__ == "__main__":
    try:
        built = ensure_llama_server(log=lambda m: print(m, file=sys.stderr))
    except ReferenceUnavailable as exc:
        print(f"llama-server unavailable: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    how = "cached" if built.build_s is None else f"built in {built.build_s:.0f} s"
    print(built.binary)
    print(f"llama-server for llama-cpp-python {built.version}: {how}", file=sys.stderr)
