"""What this machine and this llama.cpp build offer: threads, GPU devices, CPU features.

Read in a worker process (``worker.hardware_main``), since it needs llama.cpp's libraries; the app shows it
on the Models page and ``tandem doctor`` prints it.
"""

from __future__ import annotations

import ctypes
import os
import sys

from desktop.engine.native import L, ggml_library


def default_threads() -> int:
    """Roughly the physical core count: llama.cpp decodes fastest without hyper-threads."""
    n = os.cpu_count() or 2
    return max(1, n // 2) if n > 4 else n


def amx_usable() -> bool:
    """False where llama.cpp's CPU library carries its AMX kernels and the CPU reports AMX tiles: in the VMs
    this project is tested on the tile permission is granted, yet ``tilezero`` in ggml's AMX kernels dies
    with SIGILL on every batch of more than one token. Then the model loads without llama.cpp's extra buffer
    types (plain AVX-512 kernels, no weight repacking). Builds of ours leave the AMX kernels out (see
    scripts/test.sh), so this only guards a build compiled with them. ``TANDEM_AMX=1`` keeps AMX on a host
    where it works; ``0`` turns extra buffer types off anywhere."""
    forced = os.environ.get("TANDEM_AMX")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return True
    return "amx_tile" not in flags.split() or not _library_has_amx_kernels()


_AMX_MARK = b"amx repack tensor"  # a log line of ggml's AMX buffer type, compiled in only with its kernels


def _library_has_amx_kernels() -> bool:
    cached = getattr(_library_has_amx_kernels, "value", None)
    if cached is None:
        from desktop.engine.native import library_folder

        folder = library_folder()
        names = [n for n in os.listdir(folder) if n.startswith(("libggml-cpu", "ggml-cpu"))] if os.path.isdir(folder) else []
        cached = True if not names else any(_file_contains(os.path.join(folder, n), _AMX_MARK) for n in names)
        _library_has_amx_kernels.value = cached
    return cached


def _file_contains(path: str, needle: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return needle in fh.read()
    except OSError:
        return True  # unreadable: assume the worst (the guard only costs repacking)


def gpu_backend_name() -> str:
    devices = [d for d in list_devices() if d["type"] != "CPU"]
    if not devices:
        return "CPU"
    name = devices[0]["name"]
    for known in ("CUDA", "Metal", "MTL", "Vulkan", "ROCm", "HIP", "SYCL", "OpenCL", "CANN", "MUSA"):
        if name.upper().startswith(known.upper()):
            return {"MTL": "Metal", "HIP": "ROCm"}.get(known, known)
    return name


def _ggml_lib():
    try:
        return ggml_library()
    except Exception as exc:  # an unusual build without the ggml bindings: no device list, CPU assumed
        print(f"tandem: no ggml device list: {exc}", file=sys.stderr)  # the worker's log
        return None


def list_devices() -> list[dict]:
    """GPU and CPU devices from ggml's backend registry (name, description, type, memory)."""
    lib = _ggml_lib()
    if lib is None or not hasattr(lib, "ggml_backend_dev_count"):
        return []
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_name.restype = ctypes.c_char_p
    lib.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_description.restype = ctypes.c_char_p
    lib.ggml_backend_dev_description.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                            ctypes.POINTER(ctypes.c_size_t)]
    types = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "ACCEL"}
    out = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        out.append({
            "name": (lib.ggml_backend_dev_name(dev) or b"").decode(errors="replace"),
            "description": (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
            "type": types.get(lib.ggml_backend_dev_type(dev), "other"),
            "memory_free": free.value,
            "memory_total": total.value,
        })
    return out


def hardware_report() -> dict:
    import importlib.metadata

    L.llama_backend_init()
    info = (L.llama_print_system_info() or b"").decode(errors="replace")
    devices = list_devices()
    gpus = [d for d in devices if d["type"] != "CPU"]
    features = sorted({part.split(" = ")[0].strip() for seg in info.split("|") for part in [seg]
                       if " = 1" in part})
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = getattr(sys.modules.get("llama_cpp"), "__version__", "unknown")
    return {
        "llama_cpp_python": version,
        "build_backend": gpu_backend_name() if gpus else "CPU",
        "gpu_offload_supported": bool(L.llama_supports_gpu_offload()),
        "cpu_features": features,
        "system_info": info.strip(),
        "devices": devices,
        "gpus": [{"name": d["name"], "description": d["description"], "memory_total": d["memory_total"],
                  "memory_free": d["memory_free"]} for d in gpus],
        "cpu_count": os.cpu_count(),
        "default_threads": default_threads(),
        "platform": sys.platform,
    }

