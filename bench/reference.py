"""The reference: ``llama-bench`` built from the very llama.cpp vendored in the installed llama-cpp-python.

The installed version's sdist is fetched with pip (``pip download --no-binary :all:``), its
``vendor/llama.cpp`` configured the way llama-cpp-python's own build does it (Release, shared libs,
``GGML_NATIVE`` and OpenMP left at their defaults, curl off, the same GPU backend the installed wheel carries
plus any ``CMAKE_ARGS`` in the environment) and only the ``llama-bench`` target built. The result is cached
per version and flag set, so the build (several minutes on 2 cores) happens once.

Anything that goes wrong becomes ``ReferenceUnavailable`` with a one-line reason: the bench then reports
the app's own figures and says why there is no comparison.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Log = Callable[[str], None]

# GPU backend libraries a llama-cpp-python wheel may carry, and the CMake switch that builds each.
_BACKEND_FLAGS = {
    "cuda": "-DGGML_CUDA=on",
    "vulkan": "-DGGML_VULKAN=on",
    "hip": "-DGGML_HIP=on",
    "sycl": "-DGGML_SYCL=on",
    "metal": "-DGGML_METAL=on",
    "blas": "-DGGML_BLAS=on",
    "musa": "-DGGML_MUSA=on",
}


class ReferenceUnavailable(Exception):
    """llama-bench could not be had; the message says why in one line."""


@dataclass(frozen=True)
class Reference:
    binary: Path
    version: str
    cmake_flags: tuple[str, ...]
    build_s: float | None  # None when the cached binary was reused
    gpu_devices: tuple[str, ...]  # devices llama-bench lists besides the CPU
    build_info: dict = field(default_factory=dict)  # key CMakeCache values, for the report

    @property
    def offload(self) -> bool:
        return bool(self.gpu_devices)


def installed_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        raise ReferenceUnavailable("llama-cpp-python is not installed") from None


def installed_lib_dir() -> Path | None:
    """The installed package's ``llama_cpp/lib`` (found without importing llama_cpp)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    return lib if lib.is_dir() else None


def installed_backends() -> list[str]:
    """GPU/BLAS backends the installed wheel was built with, read from its ggml libraries' names."""
    lib = installed_lib_dir()
    if lib is None:
        return []
    found = []
    names = [p.name.lower() for p in lib.iterdir()]
    for backend in _BACKEND_FLAGS:
        if any(n.startswith((f"libggml-{backend}", f"ggml-{backend}")) for n in names):
            found.append(backend)
    return found


NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def cmake_flags() -> list[str]:
    """Configure flags matching llama-cpp-python's build (its CMakeLists.txt and scikit-build defaults)."""
    flags = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=ON",
        "-DLLAMA_CURL=OFF",
        "-DLLAMA_BUILD_COMMON=ON",
        "-DLLAMA_BUILD_TOOLS=ON",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_SERVER=OFF",
        "-DLLAMA_BUILD_APP=OFF",
    ]
    if sys.platform == "darwin":  # llama-cpp-python forces Metal on (embedded library) on every Mac
        flags += ["-DGGML_METAL=ON", "-DGGML_METAL_EMBED_LIBRARY=ON"]
        if platform.machine() == "x86_64":
            flags += ["-DGGML_AVX=OFF", "-DGGML_AVX2=OFF", "-DGGML_FMA=OFF", "-DGGML_F16C=OFF"]
    for backend in installed_backends():
        flag = _BACKEND_FLAGS[backend]
        if flag not in flags and not (backend == "metal" and sys.platform == "darwin"):
            flags.append(flag)
    if sys.platform == "linux" and platform.machine() == "x86_64":
        # As scripts/test.sh builds the app's llama.cpp: without ggml's AMX kernels, which die with SIGILL
        # on this project's CI VMs (their CPUs advertise AMX).
        flags += [f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"]
    flags += shlex.split(os.environ.get("CMAKE_ARGS", ""))  # what a user building the wheel would pass
    return flags


def _run(cmd: list[str], log_file: Path, what: str, cwd: Path | None = None, env: dict | None = None) -> None:
    with open(log_file, "ab") as fh:
        fh.write(("\n$ " + shlex.join(cmd) + "\n").encode())
        fh.flush()
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    if rc != 0:
        tail = log_file.read_text("utf-8", "replace").strip().splitlines()[-1:] or ["(no output)"]
        raise ReferenceUnavailable(f"{what} failed (exit {rc}): {tail[0][:200]} (full log: {log_file})")


def _fetch_sdist(version: str, cache: Path, log: Log, log_file: Path) -> Path:
    sdist_dir = cache / "sdist"
    sdist_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(sdist_dir.glob(f"llama_cpp_python-{version}.tar.gz"))
    if found:
        return found[0]
    log(f"downloading the llama-cpp-python {version} source (sdist) with pip ...")
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
          f"llama-cpp-python=={version}", "-d", str(sdist_dir)], log_file, "pip download of the sdist")
    found = sorted(sdist_dir.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise ReferenceUnavailable(f"pip download gave no llama_cpp_python-{version}.tar.gz in {sdist_dir}")
    return found[0]


def _unpack(sdist: Path, cache: Path) -> Path:
    src_root = cache / "src"
    target = src_root / sdist.name.removesuffix(".tar.gz")
    marker = target / ".tandem-unpacked"
    if marker.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    src_root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as tar:
        try:
            tar.extractall(src_root, filter="data")
        except TypeError:  # Python < 3.10.12 has no extraction filters
            tar.extractall(src_root)  # noqa: S202 - our own pip download of a PyPI sdist
    marker.touch()
    return target


def _binary_in(build_dir: Path, target: str = "llama-bench") -> Path | None:
    for candidate in (build_dir / "bin" / target, build_dir / "bin" / "Release" / f"{target}.exe",
                      build_dir / "bin" / f"{target}.exe"):
        if candidate.is_file():
            return candidate
    return None


def _cmake_cache_info(build_dir: Path) -> dict:
    wanted = ("CMAKE_BUILD_TYPE", "GGML_NATIVE", "GGML_OPENMP", "BUILD_SHARED_LIBS", "CMAKE_GENERATOR",
              "GGML_CUDA", "GGML_METAL", "GGML_VULKAN", "GGML_BLAS", "CMAKE_C_COMPILER")
    info = {}
    try:
        for line in (build_dir / "CMakeCache.txt").read_text("utf-8", "replace").splitlines():
            key, sep, value = line.partition("=")
            name = key.split(":", 1)[0]
            if sep and name in wanted:
                info[name] = value
    except OSError:
        pass
    return info


def list_gpu_devices(binary: Path) -> tuple[str, ...]:
    """Devices other than the CPU that this llama-bench can offload to (``--list-devices``)."""
    try:
        out = subprocess.run([str(binary), "--list-devices"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    devices = []
    for line in (out.stdout + "\n" + out.stderr).splitlines():
        line = line.strip()
        # "  CUDA0: NVIDIA H100 (81000 MiB, 80000 MiB free)"
        if ":" in line and not line.lower().startswith(("available devices", "load_backend", "ggml_", "warning")):
            name = line.split(":", 1)[0].strip()
            if name and " " not in name and not name.upper().startswith("CPU"):
                devices.append(line)
    return tuple(devices)


def build_dir_for(target: str, cache: Path, version: str, flags: list[str]) -> Path:
    """Where ``target`` is built for this llama-cpp-python version, flag set and platform."""
    key = hashlib.sha256(json.dumps([version, flags, sys.platform, platform.machine()]).encode()).hexdigest()[:10]
    return cache / "build" / f"{target}-{version}-{key}"


def build_target(target: str, flags: list[str], cache: Path, log: Log = print,
                 jobs: int | None = None) -> tuple[Path, Path, float | None]:
    """Build one CMake target (llama-bench, llama-server) of the installed llama-cpp-python's vendored
    llama.cpp once, cached. Returns (binary, build dir, build seconds or None when cached)."""
    version = installed_version()
    if shutil.which("cmake") is None:
        raise ReferenceUnavailable(f"cmake is not installed (needed once, to build {target})")
    build_dir = build_dir_for(target, cache, version, flags)
    binary = _binary_in(build_dir, target)
    if binary is not None:
        return binary, build_dir, None
    cache.mkdir(parents=True, exist_ok=True)
    log_file = cache / f"{target}-build-{build_dir.name.removeprefix(target + '-')}.log"
    log_file.write_text("")
    started = time.perf_counter()
    src = _unpack(_fetch_sdist(version, cache, log, log_file), cache)
    llama_src = src / "vendor" / "llama.cpp"
    if not (llama_src / "CMakeLists.txt").is_file():
        raise ReferenceUnavailable(f"the sdist has no vendor/llama.cpp ({src})")
    generator = ["-G", "Ninja"] if shutil.which("ninja") and sys.platform != "win32" else []
    log(f"building {target} from llama-cpp-python {version}'s vendored llama.cpp (once; several "
        f"minutes) — log: {log_file}")
    _run(["cmake", "-S", str(llama_src), "-B", str(build_dir), *generator, *flags], log_file, "cmake configure")
    _run(["cmake", "--build", str(build_dir), "--config", "Release", "--target", target,
          "-j", str(jobs or os.cpu_count() or 2)], log_file, f"building {target}")
    binary = _binary_in(build_dir, target)
    if binary is None:
        raise ReferenceUnavailable(f"the build finished but no {target} binary is in {build_dir}/bin")
    return binary, build_dir, time.perf_counter() - started


def ensure_llama_bench(cache: Path, log: Log = print, jobs: int | None = None) -> Reference:
    """The cached llama-bench for the installed llama-cpp-python, building it first if needed."""
    flags = cmake_flags()
    binary, build_dir, build_s = build_target("llama-bench", flags, cache, log, jobs)
    return Reference(binary=binary, version=installed_version(), cmake_flags=tuple(flags), build_s=build_s,
                     gpu_devices=list_gpu_devices(binary), build_info=_cmake_cache_info(build_dir))


@dataclass(frozen=True)
class BenchSample:
    """One llama-bench test: tokens per second of each repetition."""

    n_prompt: int
    n_gen: int
    n_depth: int
    samples_ts: tuple[float, ...]


def run_llama_bench(ref: Reference, model: Path, *, threads: int, n_prompt: int = 0, n_gen: int = 0,
                    depth: int = 0, reps: int = 1, n_batch: int | None = None, flash_attn: bool | None = None,
                    gpu_layers: int = 0, timeout: float = 900, n_ubatch: int | None = None) -> BenchSample:
    """Run one llama-bench test (JSON output) and return its per-repetition tok/s.

    ``None`` for n_batch, n_ubatch or flash_attn leaves llama-bench's own default (2048, 512, auto)."""
    cmd = [str(ref.binary), "-m", str(model), "-p", str(n_prompt), "-n", str(n_gen), "-d", str(depth),
           "-t", str(threads), "-r", str(reps), "-ngl", str(gpu_layers), "-o", "json"]
    if n_batch is not None:
        cmd += ["-b", str(n_batch)]
    if n_ubatch is not None or n_batch is not None:
        cmd += ["-ub", str(n_ubatch or n_batch)]
    if flash_attn is not None:
        cmd += ["-fa", "on" if flash_attn else "off"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ReferenceUnavailable(f"llama-bench did not finish within {timeout:.0f} s") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ReferenceUnavailable(f"llama-bench failed (exit {out.returncode}): {last[:200]}")
    try:
        rows = json.loads(out.stdout)
        row = rows[0]
        samples = tuple(float(x) for x in row["samples_ts"])
    except (ValueError, LookupError, TypeError) as exc:
        raise ReferenceUnavailable(f"could not read llama-bench's JSON output ({exc})") from None
    return BenchSample(int(row.get("n_prompt", n_prompt)), int(row.get("n_gen", n_gen)),
                       int(row.get("n_depth", depth)), samples)
