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

from desktop.core.errors import TandemError
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


class EvalStopped(EvalError):
    """Stop was asked for: raised between two requests; the responses so far stay in the cache."""


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
    timing: dict = field(default_factory=dict)  # TandemLM.timing: requests, /tokenize, template renders


class Progress:
    """Requests done and left, and the time left, one line at a time (at most every ``every`` seconds)."""

    def __init__(self, stream: TextIO | None = None, every: float = 2.0,
                 should_stop: Callable[[], bool] | None = None,
                 on_update: Callable[[str, str, int, int, float], None] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self.should_stop = should_stop
        self.on_update = on_update  # (label, kind, done, total, seconds left or -1) after every request
        self.label = ""
        self._t0 = 0.0
        self._last = 0.0

    def __call__(self, kind: str, done: int, total: int) -> None:
        if self.should_stop is not None and self.should_stop():
            raise EvalStopped("stopped; what is done is kept: run it again to resume")
        now = time.monotonic()
        if done == 0:
            self._t0 = now
            self._last = 0.0
        if self.on_update is not None:
            left = (now - self._t0) / done * (total - done) if done else -1.0
            self.on_update(self.label, kind, done, total, left)
        if done == 0:
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


def _reason(exc: BaseException) -> str:
    """An exception as one line; an HTTP error says what the server answered."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return f"the server answered {response.status_code}: {response.json()['error']['message']}"
        except Exception:  # not the OpenAI error shape
            return f"the server answered {response.status_code}: {response.text[:200]}"
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@dataclass(frozen=True)
class Target:
    """Where lm-eval sends one model's requests: a ``/v1/completions`` URL whose root serves the tokenizer."""

    url: str
    key: str | None
    n_ctx: int
    name: str
    model_id: str | None = None


def remote_target(side: str, endpoint: str, model_id: str | None) -> Target:
    """A model on a remote server, checked before anything runs: it must score given text (echo with
    logprobs; llama-server and Ollama can't) and serve its tokenizer (``/tokenizer_info``, as vLLM does)."""
    from desktop.core.endpoints import EndpointStore
    from desktop.engine.remote import connect

    url, key, label = EndpointStore().resolve(endpoint)
    model = connect(url, model_id or None, api_key=key, endpoint=label)
    try:
        caps, served, n_ctx = model.capabilities, model.model_id, int(model.info.n_ctx)
        if not caps.scoring:
            raise EvalError(f"the {side} endpoint {label} can't score given text, so lm-eval can't evaluate "
                            f"{served} there: {caps.scoring_note or 'no prompt logprobs'}")
        try:
            info = model._t.get_json("/tokenizer_info")  # noqa: SLF001 - the transport carries the key
        except Exception:
            info = None
        if not isinstance(info, dict):
            raise EvalError(f"the {side} endpoint {label} has no /tokenizer_info, so lm-eval can't use its "
                            "tokenizer (vLLM and tandem serve have it)")
    finally:
        model.close()
    return Target(url + "/v1/completions", key, n_ctx or int(info.get("model_max_length") or 2048),
                  f"{served} @ {label}", served)


@dataclass
class Prepared:
    manager: Any  # lm-eval's TaskManager
    remote: dict[str, Target]  # the sides evaluated on a remote server, already checked


def prepare(plan: EvalPlan) -> Prepared:
    """Every check before a model loads: lm-eval, the include folder's YAML, task names, datasets, and
    that each remote endpoint can score."""
    require_lm_eval()
    _quiet_lm_eval()
    _offline_if_asked()
    check_include_path(plan.include_path)
    manager = task_manager(plan)
    check_datasets(plan, manager)
    endpoints = {"base": plan.base_endpoint, "instruct": plan.instruct_endpoint}
    remote = {side: remote_target(side, ep, getattr(plan, side)) for side, ep in endpoints.items() if ep}
    return Prepared(manager, remote)


def _offline_if_asked() -> None:
    """Offline mode: lm-eval's datasets and hub calls may not leave the machine (set before they import)."""
    from desktop.core.settings import load_settings

    if load_settings().offline:
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[var] = "1"


def _quiet_lm_eval() -> None:
    """lm-eval's INFO lines and tqdm bars would bury the progress lines; its truncation warnings are
    counted and named in the report instead."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load_models(plan: EvalPlan, say: Say, sides: tuple[str, ...] = ("base", "instruct")) -> dict[str, Any]:
    from desktop.engine import LoadOptions, load_model

    options = LoadOptions(n_ctx=plan.ctx, threads=plan.threads, gpu_layers=plan.gpu_layers)
    models: dict[str, Any] = {}
    try:
        for side in sides:
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
            prepared: Prepared | None = None) -> list[RunResult]:
    """Check remote endpoints, load the local models, serve them, evaluate every run, stop the server,
    close the models. Results are written per run as they finish (``results/<run>.json``), so an
    interrupted evaluation keeps what is done."""
    prepared = prepared or prepare(plan)
    models = load_models(plan, say, tuple(s for s in ("base", "instruct") if s not in prepared.remote))
    try:
        return run_loaded(plan, models, out_dir, say, progress, prepared)
    finally:
        close_models(models)


def run_loaded(plan: EvalPlan, models: dict[str, Any], out_dir: Path, say: Say,
               progress: Progress | None = None, prepared: Prepared | None = None) -> list[RunResult]:
    """Every run on models already loaded (the app's, or ``run_all``'s), served on a free loopback port
    with a random key for as long as it takes; the caller keeps the models."""
    prepared = prepared or prepare(plan)
    manager, targets = prepared.manager, dict(prepared.remote)
    from desktop.serve import ServerConfig, ServerHandle

    out_dir.mkdir(parents=True, exist_ok=True)
    handle = None
    try:
        if models:
            key = secrets.token_urlsafe(24)
            handle = ServerHandle(models, ServerConfig(host="127.0.0.1", port=0, api_key=key))
            handle.start()
            for side, model in models.items():
                targets[side] = Target(handle.model_url(side) + "/completions", key, int(model.info.n_ctx),
                                       Path(getattr(plan, side)).name)
        return [evaluate_run(plan, run, targets[run.model], out_dir, manager, say, progress)
                for run in plan.runs()]
    finally:
        if handle is not None:
            handle.stop()


def evaluate_run(plan: EvalPlan, run: Run, target: Target, out_dir: Path, manager, say: Say,
                 progress: Progress | None) -> RunResult:
    """One run through lm-eval, its responses cached in ``cache/<run>-<plan key>_rank0.db``."""
    from lm_eval import simple_evaluate

    from desktop.eval.lm_tandem import TandemLM

    progress = progress or Progress()
    progress.label = f"{run.name} ({', '.join(plan.tasks)})"
    lm = TandemLM(base_url=target.url, api_key=target.key, chat=run.chat, max_length=target.n_ctx,
                  progress=progress, timeout=600, max_retries=1, model=target.model_id)
    n_ctx, name = target.n_ctx, target.name
    say(f"{run.name}: {', '.join(plan.tasks)} on {name}"
        f" (BOS {'added' if lm.add_bos else 'not added'} by the model's rule"
        f"{', chat template' if run.chat else ''})")
    cache = out_dir / "cache" / f"{run.name}-{plan.key()}"
    t0 = time.monotonic()
    try:
        results = simple_evaluate(
            model=lm, tasks=list(plan.tasks), num_fewshot=plan.num_fewshot, limit=plan.limit,
            use_cache=str(cache), task_manager=manager, apply_chat_template=run.chat, log_samples=True,
            verbosity="ERROR",
        )
    except TandemError:
        raise
    except Exception as exc:  # lm-eval's own or an HTTP error from the server: one line, the cache kept
        raise EvalError(f"{run.name}: {_reason(exc)}; what is done is kept, run it again to resume") from exc
    seconds = time.monotonic() - t0
    if results is None:
        raise EvalError(f"{run.name}: lm-eval returned no results")
    samples = results.pop("samples", {}) or {}
    out = RunResult(run, results, samples, lm.truncated, lm.add_bos, name, n_ctx, seconds, dict(lm.timing))
    (out_dir / "results").mkdir(exist_ok=True)
    (out_dir / "results" / f"{run.name}.json").write_text(
        json.dumps(results, indent=2, default=str), encoding="utf-8")
    if lm.truncated:
        say(f"{run.name}: {len(lm.truncated)} requests were longer than the context ({n_ctx} tokens) "
            "and were cut from the left")
    return out
