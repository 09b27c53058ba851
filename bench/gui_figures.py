"""The GUI figures: cold start to the first painted window, GUI memory with no model, event-loop stalls.

Each runs the real app in a fresh process (``bench/gui_probe.py``), with its own empty ``TANDEM_HOME``
so the user's settings and library can't change the figure. On a Linux machine with no display, an Xvfb
server is started for the run when one is installed (the xcb platform is what users get); otherwise Qt's
offscreen platform is used and the figure says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.report import Figure, Results, Target, median
from bench.system import MB

Log = Callable[[str], None]
REPO = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().parent / "gui_probe.py"

COLD_START_TARGET = Target("value", "<=", 1.0, "<= 1.0 s")
GUI_MEMORY_TARGET = Target("value", "<=", 250, "<= 250 MB")
STALL_TARGET = Target("value", "<=", 33, "<= 33 ms")


@contextlib.contextmanager
def gui_environment(home: Path) -> Iterator[tuple[dict, str]]:
    """Environment for a GUI child process, and the Qt platform it will use."""
    env = dict(os.environ, TANDEM_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    xvfb = None
    if sys.platform.startswith("linux") and not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        if shutil.which("Xvfb") and env.get("QT_QPA_PLATFORM") in (None, "", "xcb"):
            for display in range(91, 110):
                if not Path(f"/tmp/.X11-unix/X{display}").exists() and not Path(f"/tmp/.X{display}-lock").exists():
                    break
            xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while not Path(f"/tmp/.X11-unix/X{display}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            env["DISPLAY"] = f":{display}"
            env["QT_QPA_PLATFORM"] = "xcb"
        else:
            env["QT_QPA_PLATFORM"] = "offscreen"
    try:
        yield env, env.get("QT_QPA_PLATFORM") or "default"
    finally:
        if xvfb is not None:
            xvfb.terminate()
            try:
                xvfb.wait(5)
            except subprocess.TimeoutExpired:
                xvfb.kill()


def probe_once(env: dict, timeout: float = 90) -> dict:
    """Start the app once; returns the probe's JSON (times relative to just before the spawn)."""
    t0 = time.time()
    out = subprocess.run([sys.executable, str(PROBE), repr(t0), str(REPO)], env=env, capture_output=True,
                         text=True, timeout=timeout, cwd=tempfile.gettempdir())
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"the app did not start (exit {out.returncode}): {tail[:200]}")
    return json.loads(lines[-1])


def cold_start_and_memory(results: Results, reps: int = 5, log: Log = print) -> None:
    """App start to first painted window (median of ``reps`` after one warm-up start), and GUI RSS."""
    log(f"GUI cold start and memory: 1 warm-up + {reps} starts of the app")
    with tempfile.TemporaryDirectory(prefix="tandem-bench-home-") as home, \
            gui_environment(Path(home)) as (env, platform):
        runs: list[dict] = []
        try:
            probe_once(env)  # warms the OS file cache and writes the first-run settings
            for _ in range(reps):
                runs.append(probe_once(env))
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
            message = f"not measured: {exc}"
            results.add(Figure(key="cold_start", label="Cold start to first window", unit="s", value=None,
                               target=COLD_START_TARGET, note=message))
            results.add(Figure(key="gui_memory", label="GUI process memory, no model", unit="MB", value=None,
                               target=GUI_MEMORY_TARGET, note=message))
            return
    failed = [r.get("error") for r in runs if "t_shown" not in r]
    shown = [r["t_shown"] for r in runs if "t_shown" in r]
    qapp = [r["t_qapp"] for r in runs if "t_qapp" in r]
    rss = [max(r.get("rss_shown") or 0, r.get("rss_settled") or 0) / MB for r in runs if r.get("rss_shown")]
    heavy = sorted({m for r in runs for key in ("modules_shown", "modules_settled")
                    for m, loaded in (r.get(key) or {}).items() if loaded})
    window = next((r.get("window") for r in runs if r.get("window")), None)
    lazy = ("llama_cpp and huggingface_hub not imported" if not heavy
            else f"imported on the start path: {', '.join(heavy)} (should be lazy)")
    if heavy:
        results.note(f"Cold start: {', '.join(heavy)} imported before/while the window showed; they should load "
                     "lazily, off the GUI start path.")
    note = (f"`tandem` (desktop.cli.main) in a fresh process until the first paint of the {window or 'main'} "
            f"window; Qt platform {platform}; QApplication created at {1000 * (median(qapp) or 0):.0f} ms; {lazy}; "
            f"OS file cache warm (one discarded start)")
    if failed:
        note += f"; {len(failed)} start(s) failed: {failed[0]}"
    results.add(Figure(key="cold_start", label="Cold start to first window", unit="s", value=median(shown),
                       target=COLD_START_TARGET, samples=tuple(shown), note=note,
                       extra={"platform": platform, "t_qapp": qapp}))
    results.add(Figure(key="gui_memory", label="GUI process memory, no model", unit="MB", value=median(rss),
                       target=GUI_MEMORY_TARGET, samples=tuple(rss),
                       note=f"RSS at first paint and {1.5:.1f} s later (the larger), no model loaded"))


def gui_stall(results: Results, base: Path, instruct: Path, threads: int, log: Log = print) -> Figure | None:
    """Longest GUI event-loop stall while two models stream and a download runs (see stall_probe)."""
    try:
        from bench import stall_probe
    except ImportError:
        return results.add(Figure(key="gui_stall", label="Longest GUI stall (2 streams + download)", unit="ms",
                                  value=None, target=STALL_TARGET,
                                  note="not measured yet: needs the Compare pane and the hub downloader"))
    return stall_probe.measure(results, base, instruct, threads, log)
