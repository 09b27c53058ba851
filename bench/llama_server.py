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

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.reference import (
    Log,
    ReferenceUnavailable,
    _fetch_sdist,
    _run,
    _unpack,
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


def _binary_in(build_dir: Path) -> Path | None:
    for candidate in (build_dir / "bin" / "llama-server", build_dir / "bin" / "Release" / "llama-server.exe",
                      build_dir / "bin" / "llama-server.exe"):
        if candidate.is_file():
            return candidate
    return None


def find_llama_server(cache: Path | None = None) -> Path | None:
    """The cached binary if it was built already (never builds)."""
    try:
        version = installed_version()
    except ReferenceUnavailable:
        return None
    return _binary_in(_build_dir(cache or cache_dir(), version, server_flags()))


def _build_dir(cache: Path, version: str, flags: list[str]) -> Path:
    key = hashlib.sha256(json.dumps([version, flags, sys.platform, platform.machine()]).encode()).hexdigest()[:10]
    return cache / "build" / f"llama-server-{version}-{key}"


def ensure_llama_server(cache: Path | None = None, log: Log = print, jobs: int | None = None) -> ServerBuild:
    """The cached llama-server for the installed llama-cpp-python, building it first if needed."""
    cache = cache or cache_dir()
    version = installed_version()
    if shutil.which("cmake") is None:
        raise ReferenceUnavailable("cmake is not installed (needed once, to build llama-server)")
    flags = server_flags()
    build_dir = _build_dir(cache, version, flags)
    binary = _binary_in(build_dir)
    if binary is not None:
        return ServerBuild(binary, version, None)
    log_file = cache / f"llama-server-build-{version}.log"
    log_file.write_text("")
    started = time.perf_counter()
    src = _unpack(_fetch_sdist(version, cache, log, log_file), cache)
    llama_src = src / "vendor" / "llama.cpp"
    if not (llama_src / "CMakeLists.txt").is_file():
        raise ReferenceUnavailable(f"the sdist has no vendor/llama.cpp ({src})")
    generator = ["-G", "Ninja"] if shutil.which("ninja") and sys.platform != "win32" else []
    log(f"building llama-server from llama-cpp-python {version}'s llama.cpp (once) — log: {log_file}")
    _run(["cmake", "-S", str(llama_src), "-B", str(build_dir), *generator, *flags], log_file, "cmake configure")
    _run(["cmake", "--build", str(build_dir), "--config", "Release", "--target", "llama-server",
          "-j", str(jobs or os.cpu_count() or 2)], log_file, "building llama-server")
    binary = _binary_in(build_dir)
    if binary is None:
        raise ReferenceUnavailable(f"the build finished but no llama-server binary is in {build_dir}/bin")
    return ServerBuild(binary, version, time.perf_counter() - started)


if __name__ == "__main__":
    try:
        built = ensure_llama_server(log=lambda m: print(m, file=sys.stderr))
    except ReferenceUnavailable as exc:
        print(f"llama-server unavailable: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    how = "cached" if built.build_s is None else f"built in {built.build_s:.0f} s"
    print(built.binary)
    print(f"llama-server for llama-cpp-python {built.version}: {how}", file=sys.stderr)
