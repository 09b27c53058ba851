"""``tandem eval``'s work: serve both models on loopback (``ServerHandle``, a free port, a random key), run
lm-eval's ``simple_evaluate`` once per run through the ``tandem`` model class, keep each run's responses in
its own cache file in the output folder (so a second run of the same command skips what is done), and
write the report. Blocking; imports lm-eval only when called.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from desktop.eval.plan import (
    EvalError,
    EvalPlan,
    Run,
    check_datasets,
    check_include_path,
    require_lm_eval,
    task_manager,
)

Say = Callable[[str], None]


@dataclass
class RunResult:
    run: Run
    results: dict  # lm-eval's results, samples left out
    samples: dict  # task -> lm-eval's logged samples
    truncated: list[dict] = field(default_factory=list)
    add_bos: bool = False
    model_name: str = ""
    n_ctx: int = 0
    seconds: float = 0.0


class Progress:
    """Requests done and left, and the time left, one line at a time (at most every ``every`` seconds)."""

    def __init__(self, stream: TextIO | None = None, every: float = 2.0) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self.label = ""
        self._t0 = 0.0
        self._last = 0.0

    def __call__(self, kind: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done == 0:
            self._t0 = now
            self._last = 0.0
            self._line(f"{self.label}: {total} {kind} requests to send")
            return
        if done < total and now - self._last < self.every:
            return
        self._last = now
        rate = (now - self._t0) / done
        left = rate * (total - done)
        self._line(f"{self.label}: {done}/{total} {kind} requests, {total - done} left, "
                   f"{_duration(left)} left")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def prepare(plan: EvalPlan):
    """Every check that needs no model: lm-eval, the include folder's YAML, task names, datasets."""
    require_lm_eval()
    _quiet_lm_eval()
    check_include_path(plan.include_path)
    manager = task_manager(plan)
    check_datasets(plan, manager)
    return manager


def _quiet_lm_eval() -> None:
    """lm-eval's INFO lines and tqdm bars would bury the progress lines; its truncation warnings are
    counted and named in the report instead."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load_models(plan: EvalPlan, say: Say) -> dict[str, Any]:
    from desktop.engine import LoadOptions, load_model

    options = LoadOptions(n_ctx=plan.ctx, threads=plan.threads)
    models: dict[str, Any] = {}
    try:
        for side in ("base", "instruct"):
            path = getattr(plan, side)
            say(f"loading the {side} model {Path(path).name}")
            try:
                models[side] = load_model(path, options)
            except Exception as exc:
                msg = " ".join(str(exc).split()) or type(exc).__name__
                raise EvalError(f"the {side} model {path} failed to load: {msg}") from None
    except BaseException:
        close_models(models)
        raise
    return models


def close_models(models: dict[str, Any]) -> None:
    for model in models.values():
        try:
            model.close()
        except Exception:  # a worker already gone: nothing left to free
            pass


def run_all(plan: EvalPlan, out_dir: Path, say: Say, progress: Progress | None = None,
            manager=None) -> list[RunResult]:
    """Load, serve, evaluate every run, stop the server, close the models. Results are written per run
    as they finish (``results/<run>.json``), so an interrupted evaluation keeps what is done."""
    manager = manager or prepare(plan)
    from desktop.serve import ServerConfig, ServerHandle

    out_dir.mkdir(parents=True, exist_ok=True)
    models = load_models(plan, say)
    key = secrets.token_urlsafe(24)
    handle = ServerHandle(models, ServerConfig(host="127.0.0.1", port=0, api_key=key))
    handle.start()
    try:
        results = []
        for run in plan.runs():
            model = models[run.model]
            url = handle.model_url(run.model) + "/completions"
            results.append(evaluate_run(plan, run, url, key, int(model.info.n_ctx), out_dir, manager,
                                        say, progress, name=Path(getattr(plan, run.model)).name))
        return results
    finally:
        handle.stop()
        close_models(models)


def evaluate_run(plan: EvalPlan, run: Run, url: str, key: str | None, n_ctx: int, out_dir: Path, manager,
                 say: Say, progress: Progress | None, name: str = "") -> RunResult:
    """One run through lm-eval, its responses cached in ``cache/<run>-<plan key>_rank0.db``."""
    from lm_eval import simple_evaluate

    from desktop.eval.lm_tandem import TandemLM

    progress = progress or Progress()
    progress.label = f"{run.name} ({', '.join(plan.tasks)})"
    lm = TandemLM(base_url=url, api_key=key, chat=run.chat, max_length=n_ctx, progress=progress,
                  timeout=600, max_retries=1)
    say(f"{run.name}: {', '.join(plan.tasks)} on {name}"
        f" (BOS {'added' if lm.add_bos else 'not added'} by the model's rule"
        f"{', chat template' if run.chat else ''})")
    cache = out_dir / "cache" / f"{run.name}-{plan.key()}"
    t0 = time.monotonic()
    results = simple_evaluate(
        model=lm, tasks=list(plan.tasks), num_fewshot=plan.num_fewshot, limit=plan.limit,
        use_cache=str(cache), task_manager=manager, apply_chat_template=run.chat, log_samples=True,
        verbosity="ERROR",
    )
    seconds = time.monotonic() - t0
    if results is None:
        raise EvalError(f"{run.name}: lm-eval returned no results")
    samples = results.pop("samples", {}) or {}
    out = RunResult(run, results, samples, lm.truncated, lm.add_bos, name, n_ctx, seconds)
    (out_dir / "results").mkdir(exist_ok=True)
    (out_dir / "results" / f"{run.name}.json").write_text(
        json.dumps(results, indent=2, default=str), encoding="utf-8")
    if lm.truncated:
        say(f"{run.name}: {len(lm.truncated)} requests were longer than the context ({n_ctx} tokens) "
            "and were cut from the left")
    return out
