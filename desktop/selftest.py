"""``tandem selftest``: check that an install (pip, bundle, .app, Windows installer) really works.

It writes a tiny random base model and its instruct sibling to a temporary folder, loads them in engine
worker processes (the part a frozen bundle most often gets wrong: the shared libraries of llama.cpp and
the ``spawn`` start method re-executing the bundle), streams a raw completion and a templated chat,
reads the files' metadata, and opens the main window (offscreen when there is no display). Each check
prints ``ok``/``FAIL`` with its time as it finishes, so a packager sees where a broken build stops.

Nothing is downloaded and the person's own files are never touched: the run uses a scratch folder as
``TANDEM_HOME`` (models, settings, logs), removed at the end unless a check failed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from desktop import __version__

Status = Literal["ok", "FAIL", "skip"]

COMPLETION_PROMPT = "Once upon a time"
CHAT_MESSAGES = ({"role": "user", "content": "hi"},)
MAX_TOKENS = 8
SEED = 1


class CheckFailed(Exception):
    """A check found the install wrong; the message says what was expected and what was seen."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    seconds: float
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3),
                "detail": self.detail}


@dataclass
class _State:
    """What earlier checks hand to later ones."""

    folder: Path
    models: dict[str, Path] = field(default_factory=dict)
    handles: dict[str, Any] = field(default_factory=dict)  # kind -> engine ModelHandle


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def _short(text: str, limit: int = 40) -> str:
    one_line = text.replace("\n", "\\n")
    return json.dumps(one_line[:limit] + ("…" if len(one_line) > limit else ""), ensure_ascii=False)


# --- the checks, in order; each returns a one-line detail or raises -----------------------------------


def check_resources(state: _State) -> str:
    from desktop.core.paths import APP_ID, resources_dir

    folder = resources_dir()
    needed = ["icons/tandem.svg", "icons/tandem-256.png", f"{APP_ID}.desktop"]
    missing = [name for name in needed if not (folder / name).is_file()]
    _expect(not missing, f"missing from {folder}: {', '.join(missing)}")
    data_files = sorted(folder.glob("*.json"))
    for path in data_files:
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckFailed(f"{path.name} is unreadable: {exc}") from None
    return f"icons, launcher entry and {len(data_files)} data file(s) in {folder}"


def check_write_models(state: _State) -> str:
    from desktop.core.synth import write_llama_gguf

    state.models["base"] = write_llama_gguf(state.folder / "selftest-base.gguf", instruct=False, seed=1)
    state.models["instruct"] = write_llama_gguf(state.folder / "selftest-instruct.gguf", instruct=True, seed=2)
    sizes = " + ".join(f"{p.stat().st_size / 1e6:.1f} MB" for p in state.models.values())
    return f"base + instruct GGUF ({sizes}) in {state.folder}"


def check_metadata(state: _State) -> str:
    from desktop.core.gguf_meta import read_metadata
    from desktop.core.synth import TINY

    base = read_metadata(state.models["base"])
    instruct = read_metadata(state.models["instruct"])
    for meta, kind in ((base, "base"), (instruct, "instruct")):
        _expect(meta.architecture == "llama", f"{kind}: architecture {meta.architecture!r}, expected 'llama'")
        _expect(meta.kind == kind, f"{kind} model read as {meta.kind!r}")
        _expect(meta.n_layer == TINY.n_layer, f"{kind}: {meta.n_layer} layers, expected {TINY.n_layer}")
        _expect(meta.context_length == TINY.context_length,
                f"{kind}: context {meta.context_length}, expected {TINY.context_length}")
    _expect(not base.has_chat_template, "the base model reads as having a chat template")
    _expect(instruct.has_chat_template, "the instruct model's chat template was not found")
    return (f"llama, {base.n_layer} layers, {base.parameters:,} parameters, {base.quantization}; "
            f"base has no chat template, instruct has one")


def _load(state: _State, kind: str) -> str:
    from desktop.engine import LoadOptions, load_model

    handle = load_model(state.models[kind], LoadOptions(threads=1))
    state.handles[kind] = handle
    pid = handle.pid
    _expect(pid is not None, "the worker process is not running after the load")
    _expect(pid != os.getpid(), "the model was loaded in this process, not in a worker")
    _expect(handle.info.kind == kind, f"the engine sees a {handle.info.kind} model, expected {kind}")
    return (f"worker pid {pid}, backend {handle.info.backend}, n_ctx {handle.info.n_ctx}, "
            f"loaded in {handle.info.load_s:.2f} s")


def check_load_base(state: _State) -> str:
    return _load(state, "base")


def _run_stream(stream) -> tuple[str, int, Any]:
    """Drain a stream; return (text joined from the token events, token count, final event)."""
    from desktop.engine import FinalEvent, TokenEvent

    pieces: list[str] = []
    final = None
    for event in stream:
        if isinstance(event, TokenEvent):
            pieces.append(event.text)
        elif isinstance(event, FinalEvent):
            final = event
    _expect(final is not None, "the stream ended without a final event")
    if final.error is not None:
        raise CheckFailed(f"the stream failed: {final.error}")
    _expect(final.finish_reason in ("stop", "length"), f"finish reason {final.finish_reason!r}")
    text = "".join(pieces)
    _expect(text == final.text, "the streamed tokens do not add up to the final text")
    return text, len(pieces), final


def check_completion(state: _State) -> str:
    from desktop.engine import SamplingParams

    handle = state.handles["base"]
    params = SamplingParams(max_tokens=MAX_TOKENS, seed=SEED)
    text, tokens, final = _run_stream(handle.complete(COMPLETION_PROMPT, params))
    _expect(tokens >= 1, "no tokens were streamed")
    _expect(final.stats.completion_tokens <= MAX_TOKENS,
            f"{final.stats.completion_tokens} tokens generated, limit was {MAX_TOKENS}")
    again, _, _ = _run_stream(handle.complete(COMPLETION_PROMPT, params))
    _expect(again == text, f"the same seed gave different text: {_short(text)} then {_short(again)}")
    return (f"{tokens} tokens streamed ({final.finish_reason}), {final.stats.decode_tps:.0f} tok/s, "
            f"same seed gave the same text: {_short(text)}")


def check_load_instruct(state: _State) -> str:
    return _load(state, "instruct")


def check_chat(state: _State) -> str:
    from desktop.engine import SamplingParams

    handle = state.handles["instruct"]
    prompt = handle.render_chat(list(CHAT_MESSAGES))
    _expect("<|im_start|>user\nhi<|im_end|>" in prompt and prompt.endswith("<|im_start|>assistant\n"),
            f"the ChatML template rendered {_short(prompt, 80)}")
    text, tokens, final = _run_stream(handle.chat(list(CHAT_MESSAGES), SamplingParams(max_tokens=MAX_TOKENS,
                                                                                        seed=SEED)))
    _expect(tokens >= 1 or final.finish_reason == "stop", "no tokens were streamed")
    _expect(final.stats.prompt_tokens >= 5, f"the templated prompt was only {final.stats.prompt_tokens} tokens")
    return (f"ChatML prompt of {final.stats.prompt_tokens} tokens, {tokens} tokens back "
            f"({final.finish_reason}): {_short(text)}")


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _choose_platform() -> str | None:
    """The Qt platform to ask for: offscreen without a display; on a Linux display the native one with
    offscreen as a fallback, so a platform plugin that can't load (missing system libraries) becomes a
    FAIL line here instead of Qt aborting the whole selftest. Returns the native platform wanted, if any."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return None  # the person chose; respect it
    if not _has_display():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return None
    if sys.platform.startswith("linux"):
        native = "wayland;xcb" if os.environ.get("WAYLAND_DISPLAY") else "xcb"
        os.environ["QT_QPA_PLATFORM"] = f"{native};offscreen"
        return native
    return None


def check_main_window(state: _State) -> str:
    wanted = _choose_platform()  # before the QApplication exists
    from desktop.app import probe_main_window  # lazy: the engine checks above must not need Qt

    before = set(threading.enumerate())
    facts = probe_main_window()
    if wanted and facts["platform"] == "offscreen":
        display = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY")
        raise CheckFailed(f"Qt's {wanted} platform plugin could not start on display {display!r} (no "
                          "connection to it, or system libraries missing: QT_DEBUG_PLUGINS=1 shows which); "
                          "the app would not open")
    missing = sorted({"png", "svg", "ico"} - set(facts["image_formats"]))
    _expect(not missing, f"Qt image plugins missing for: {', '.join(missing)}")
    _expect(facts["visible"], "the main window did not become visible")
    _expect("Tandem" in facts["title"], f"window title {facts['title']!r}")
    _expect(facts["icon_renders"], "the window icon does not render (SVG icon plugin missing?)")
    _expect(facts["closed"], "the main window did not close")
    busy = _wait_for_threads(set(threading.enumerate()) - before, WINDOW_THREADS_TIMEOUT_S)
    _expect(not busy, f"background work still running {WINDOW_THREADS_TIMEOUT_S:.0f} s after the window "
                      f"closed: {', '.join(busy)}")
    width, height = facts["size"]
    return f"{width}x{height} on the {facts['platform']!r} platform, icon renders, closed again"


WINDOW_THREADS_TIMEOUT_S = 20.0


def _wait_for_threads(threads, timeout: float) -> list[str]:
    """Let the window's start-up work (library scan, hub import) finish: a daemon thread cut off in the
    middle of an import at interpreter exit prints junk, and a window that can't settle is a finding."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sorted(t.name for t in threads if t.is_alive())


CHECKS: tuple[tuple[str, Callable[[_State], str], tuple[str, ...]], ...] = (
    # (name, function, names of checks it needs)
    ("resources", check_resources, ()),
    ("write tiny models", check_write_models, ()),
    ("read metadata", check_metadata, ("write tiny models",)),
    ("load base model in a worker", check_load_base, ("write tiny models",)),
    ("stream a raw completion", check_completion, ("load base model in a worker",)),
    ("load instruct model in a worker", check_load_instruct, ("write tiny models",)),
    ("stream a templated chat", check_chat, ("load instruct model in a worker",)),
    ("open the main window", check_main_window, ()),
)
GUI_CHECK = "open the main window"


def describe_install() -> str:
    """One line: which Tandem, from where, on what."""
    if getattr(sys, "frozen", False):
        where = f"bundle at {Path(sys.executable).parent}"
    else:
        where = f"Python {platform.python_version()} at {sys.executable}"
    return f"Tandem {__version__} selftest: {where}; {platform.system()} {platform.machine()}"


@dataclass(frozen=True)
class SelftestRun:
    results: list[CheckResult]
    kept_folder: Path | None  # the scratch folder (models, logs), kept only when something failed

    @property
    def ok(self) -> bool:
        return all_passed(self.results)


def run_selftest(*, gui: bool = True, report: Callable[[CheckResult], None] | None = None,
                 temp_root: str | None = None) -> SelftestRun:
    """Run every check in order; ``report`` sees each result as it finishes.

    Everything happens in a scratch folder that also serves as ``TANDEM_HOME``, so a selftest never
    touches the person's own settings, history, models or logs. When a check fails the folder is kept
    (it holds the engine workers' logs and the traceback) and its path is returned.
    """
    results: list[CheckResult] = []
    passed: set[str] = set()
    folder = Path(tempfile.mkdtemp(prefix="tandem-selftest-", dir=temp_root))
    saved_home = os.environ.get("TANDEM_HOME")
    os.environ["TANDEM_HOME"] = str(folder / "home")
    state = _State(folder)
    try:
        for name, func, needs in CHECKS:
            result = _run_one(name, func, needs, state, passed, gui)
            if result.status == "ok":
                passed.add(name)
            results.append(result)
            if report is not None:
                report(result)
    finally:
        for handle in state.handles.values():
            handle.close()
        if saved_home is None:
            os.environ.pop("TANDEM_HOME", None)
        else:
            os.environ["TANDEM_HOME"] = saved_home
    if all_passed(results):
        shutil.rmtree(folder, ignore_errors=True)
        return SelftestRun(results, None)
    return SelftestRun(results, folder)


def _run_one(name: str, func: Callable[[_State], str], needs: tuple[str, ...], state: _State,
             passed: set[str], gui: bool) -> CheckResult:
    if name == GUI_CHECK and not gui:
        return CheckResult(name, "skip", 0.0, "not asked for (--no-gui)")
    missing = [n for n in needs if n not in passed]
    if missing:
        return CheckResult(name, "skip", 0.0, f"not run: needs {', '.join(missing)}")
    start = time.perf_counter()
    try:
        detail = func(state)
        status: Status = "ok"
    except CheckFailed as exc:
        detail, status = str(exc), "FAIL"
    except Exception as exc:  # anything else is a broken install: say what, keep going with the rest
        from desktop.core.errors import TandemError

        status = "FAIL"
        if isinstance(exc, TandemError):
            detail = str(exc)
        else:
            from desktop.core.logs import log_exception

            where = log_exception(f"selftest check {name!r}")
            detail = f"{type(exc).__name__}: {exc} (traceback in {where})"
    return CheckResult(name, status, time.perf_counter() - start, detail)


def all_passed(results: list[CheckResult]) -> bool:
    """True when nothing failed and every skip was asked for (a skip caused by a failure counts as one)."""
    return all(r.status == "ok" or (r.status == "skip" and r.name == GUI_CHECK) for r in results)


def format_result(result: CheckResult) -> str:
    return f"  {result.status:<4}  {result.seconds:6.2f}s  {result.name}: {result.detail}"
