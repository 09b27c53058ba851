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

SETTLE_S = 1.5  # as gui_probe.SETTLE_S: how long the probe waits after the first paint
COLD_START_TARGET = Target("value", "<=", 1.0, "<= 1.0 s")
GUI_MEMORY_TARGET = Target("value", "<=", 250, "<= 250 MB")
STALL_TARGET = Target("value", "<=", 33, "<= 33 ms")


@contextlib.contextmanager
def gui_environment(home: Path) -> Iterator[tuple[dict, str]]:
    """Environment for a GUI child process, and the Qt platform it will use."""
    env = dict(os.environ, TANDEM_HOME=str(home), HF_HUB_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    # An installed app has its bytecode compiled (pip does it at install); without this variable the warm-up
    # start writes the .pyc files a checkout lacks, so the timed starts don't recompile every module.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
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
            if not _qt_starts(env):  # e.g. missing xcb-util libraries: Qt aborts on the xcb platform
                xvfb.terminate()
                xvfb.wait(5)
                xvfb = None
                env.pop("DISPLAY")
                env["QT_QPA_PLATFORM"] = "offscreen"
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


def _qt_starts(env: dict) -> bool:
    """Whether a QApplication can start with this environment's platform plugin."""
    code = "from PySide6.QtWidgets import QApplication; QApplication([])"
    try:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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
    def loaded(key: str) -> list[str]:
        return sorted({m for r in runs for m, on in (r.get(key) or {}).items() if on})

    heavy, later = loaded("modules_shown"), loaded("modules_settled")
    later = [m for m in later if m not in heavy]
    window = next((r.get("window") for r in runs if r.get("window")), None)
    lazy = ("llama_cpp and huggingface_hub not imported before the window showed" if not heavy
            else f"imported before the window showed: {', '.join(heavy)} (should be lazy)")
    if later:
        lazy += f"; imported in the {SETTLE_S:.1f} s after it (background): {', '.join(later)}"
    if heavy:
        results.note(f"Cold start: {', '.join(heavy)} imported before the window showed; they should load "
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
                       note=f"RSS at first paint and {SETTLE_S:.1f} s later (the larger), no model loaded"))


def gui_stall(results: Results, base: Path, instruct: Path, threads: int, seconds: float = 20.0,
              log: Log = print) -> Figure:
    """Longest GUI event-loop stall while two models stream and a download runs (``stall_child.py``)."""
    from bench.hub_server import HubFileServer

    label = "Longest GUI stall (2 streams + download)"
    rate_mb_s = 25
    log(f"GUI stall: Completion and Chat panes streaming (threads {threads} each) and a {rate_mb_s} MB/s "
        f"download, {seconds:.0f} s")
    with tempfile.TemporaryDirectory(prefix="tandem-bench-home-") as home, \
            HubFileServer(size_mb=int(rate_mb_s * (seconds + 15)), rate_mb_s=rate_mb_s) as hub, \
            gui_environment(Path(home)) as (env, platform):
        models = Path(home) / "data" / "models"
        models.mkdir(parents=True)
        links = []
        for path in (base, instruct):
            link = models / path.name
            link.symlink_to(path)
            links.append(str(link))
        env.pop("HF_HUB_OFFLINE", None)
        env["HF_ENDPOINT"] = hub.endpoint
        config = {"base": links[0], "instruct": links[1], "threads": threads, "seconds": seconds,
                  "timeout_s": seconds + 240,
                  "download": {"repo": hub.repo, "filename": hub.filename, "dest": str(Path(home) / "downloads")}}
        try:
            out = subprocess.run([sys.executable, str(Path(__file__).with_name("stall_child.py")), json.dumps(config),
                                  str(REPO)], env=env, capture_output=True, text=True, timeout=seconds + 300,
                                 cwd=tempfile.gettempdir())
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if not lines:
                tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise RuntimeError(f"the GUI process failed (exit {out.returncode}): {tail[:200]}")
            data = json.loads(lines[-1])
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
            return results.add(Figure(key="gui_stall", label=label, unit="ms", value=None, target=STALL_TARGET,
                                      note=f"not measured: {exc}"))
    if data.get("error") or data.get("max_gap_ms") is None:
        return results.add(Figure(key="gui_stall", label=label, unit="ms", value=None, target=STALL_TARGET,
                                  note=f"not measured: {data.get('error', 'no figure')}", extra=data))
    downloaded = (data.get("download_bytes") or 0) / MB
    note = (f"longest gap between 5 ms timer ticks on the GUI thread over {data['measured_s']:.0f} s while the "
            f"Completion pane (base model) and the Chat pane (instruct model) stream and the hub's DownloadManager "
            f"fetches from a loopback server ({downloaded:.0f} MB, state {data.get('download_state')}); "
            f"p99 gap {data.get('p99_gap_ms') or 0:.1f} ms; {data['gaps_over_33ms']} gaps over 33 ms; "
            f"{data.get('streams_started')} generations started, tokens streamed {data.get('tokens')}; "
            f"Qt platform {platform}")
    return results.add(Figure(key="gui_stall", label=label, unit="ms", value=data["max_gap_ms"],
                              target=STALL_TARGET, note=note, extra=data))


def first_run_stall(results: Results, base: Path, instruct: Path, threads: int = 1, log: Log = print) -> Figure:
    """Longest GUI stall through the first run with real files: empty library → download the SmolLM2 135M
    pair from a loopback hub serving ``base`` and ``instruct`` under its catalog names → Compare → World Cup
    → Run both → analysis (``firstrun_child.py``, steps in ``bench/first_run.py``)."""
    from bench.first_run import served_files
    from bench.hub_server import HubFileServer

    label = "Longest GUI stall, first run (download → library → Compare run → analysis)"
    log(f"GUI stall on the first-run path with {Path(base).name} and {Path(instruct).name} (threads {threads})")
    try:
        data = run_first_run_child(base, instruct, threads)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        return results.add(Figure(key="first_run_stall", label=label, unit="ms", value=None, target=STALL_TARGET,
                                  note=f"not measured: {exc}"))
    if data.get("error"):
        return results.add(Figure(key="first_run_stall", label=label, unit="ms", value=None, target=STALL_TARGET,
                                  note=f"not measured: {data['error']}", extra=data))
    steps = ", ".join(f"{k} {v:.0f} ms" for k, v in data["steps_max_gap_ms"].items())
    cpu_steps = ", ".join(f"{k} {v:.0f} ms" for k, v in data["steps_max_gap_cpu_ms"].items())
    load = f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores" if hasattr(os, "getloadavg") else ""
    paint = data.get("first_paint_ms")
    since = (f"the window's first paint (handled {paint:.0f} ms after show(): the end of the cold start figure)"
             if paint is not None else "5 s after show() (no paint of the window was seen)")
    note = (f"longest gap between 5 ms timer ticks on the GUI thread from {since} to the end of the analysis; "
            f"per step: {steps}; {data['gaps_over_33ms']} gaps over 33 ms; step times "
            f"{data['steps_s']}; files served by {HubFileServer.__name__} under the catalog's names "
            f"{[n for _r, n in served_files(base, instruct)]}; Qt platform {data.get('platform')}{load}")
    results.add(Figure(key="first_run_stall_cpu", label=label.replace("Longest GUI stall", "Longest GUI-thread work"),
                       unit="ms", value=data["max_gap_cpu_ms"], target=STALL_TARGET, extra={"steps": cpu_steps},
                       note=f"the GUI thread's own CPU time within its longest gap, per step: {cpu_steps} (the part "
                            "of a stall that is the app's work, not other processes holding the cores)"))
    return results.add(Figure(key="first_run_stall", label=label, unit="ms", value=data["max_gap_ms"],
                              target=STALL_TARGET, note=note, extra=data))


def run_first_run_child(base: Path, instruct: Path, threads: int = 1, timeout_s: float = 900,
                        env_extra: dict | None = None, on_start: Callable[[int], None] | None = None) -> dict:
    """One first-run in a fresh GUI process with its own empty TANDEM_HOME; returns its JSON."""
    from bench.first_run import served_files
    from bench.hub_server import HubFileServer

    with tempfile.TemporaryDirectory(prefix="tandem-bench-home-") as home, \
            HubFileServer.real_files(served_files(base, instruct)) as hub, \
            gui_environment(Path(home)) as (env, platform):
        env.pop("HF_HUB_OFFLINE", None)
        env["HF_ENDPOINT"] = hub.endpoint
        env["HF_HOME"] = str(Path(home) / "hf")
        env.update(env_extra or {})
        config = {"threads": threads, "timeout_s": timeout_s}
        child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("firstrun_child.py")),
                                  json.dumps(config), str(REPO)], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
        if on_start is not None:
            on_start(child.pid)
        try:
            stdout, stderr = child.communicate(timeout=timeout_s + 60)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if not lines:
            tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"the GUI process failed (exit {child.returncode}): {tail[:200]}")
        data = json.loads(lines[-1])
        data["platform"] = platform
        return data


def _first_run_main(argv: list[str]) -> int:
    """``python -m bench.gui_figures BASE INSTRUCT [THREADS]``: the first-run stall figure alone, PASS/FAIL."""
    base, instruct = Path(argv[0]), Path(argv[1])
    results = Results(machine={}, config={})
    fig = first_run_stall(results, base, instruct, threads=int(argv[2]) if len(argv) > 2 else 1)
    for figure in results.figures:
        value = "not measured" if figure.value is None else f"{figure.value:.0f} ms"
        what = "GUI stall" if figure.key == "first_run_stall" else "GUI-thread work in a stall"
        print(f"{figure.verdict} {what} <= 33 ms through download → library → Compare run → analysis with the "
              f"real files: {value}")
        print(f"  {figure.note}")
    return 0 if fig.passed else 1


if __name__ == "__main__":
    raise SystemExit(_first_run_main(sys.argv[1:]))
