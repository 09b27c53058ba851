"""Run lm-evaluation-harness (the eval extra, lm-eval 0.4.13) against a server on loopback, fully offline, and
read back what it logged. The lm-eval proof in tests/real and the serve bench share it.

lm-eval runs as its own process (``python -m lm_eval run``), the way a user runs it, with the Hugging Face Hub
and datasets offline and their caches in the output folder. The project's tasks come from ``--include_path``
(``desktop.eval.TASKS_DIR``). One request at a time, batch size 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from desktop.eval import TASKS_DIR


def offline_env(folder: Path) -> dict[str, str]:
    """lm-eval with no network: the Hub and datasets offline, their caches under ``folder``."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=str(folder / "hf"), HF_DATASETS_CACHE=str(folder / "hf" / "datasets"),
               TOKENIZERS_PARALLELISM="false")
    env.pop("HF_ENDPOINT", None)
    return env


@dataclass
class LmEvalRun:
    """One lm-eval run: its exit status, wall time, the aggregated results and the logged samples per task."""

    returncode: int
    wall_s: float
    command: list[str]
    log: str  # lm-eval's stdout and stderr together
    results: dict = field(default_factory=dict)  # results_*.json's "results": task -> {"acc,none": ...}
    samples: dict[str, list[dict]] = field(default_factory=dict)  # task -> the samples_*.jsonl rows

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.results)

    def metric(self, task: str, name: str) -> float:
        return float(self.results[task][f"{name},none" if "," not in name else name])

    def failure(self) -> str:
        """The last line that says what went wrong (for a table row or an assertion message)."""
        lines = [x.strip() for x in self.log.splitlines() if x.strip()]
        for marker in ("Error", "error", "Exception", "Traceback"):
            hits = [x for x in lines if marker in x and not x.startswith("File ")]
            if hits:
                return hits[-1][:300]
        return (lines[-1] if lines else "(no output)")[:300]


def lm_eval_command(model: str, model_args: dict[str, object], tasks: list[str], out: Path, *,
                    limit: int | None = None, include_path: Path = TASKS_DIR, log_samples: bool = True) -> list[str]:
    args = ",".join(f"{k}={v}" for k, v in model_args.items())
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", model, "--model_args", args, "--tasks", ",".join(tasks),
           "--include_path", str(include_path), "--batch_size", "1", "--output_path", str(out)]
    if log_samples:
        cmd.append("--log_samples")
    if limit is not None:
        cmd += ["--limit", str(limit)]
    return cmd


def run_lm_eval(model: str, model_args: dict[str, object], tasks: list[str], out: Path, *, limit: int | None = None,
                timeout: float = 3600, log_samples: bool = True) -> LmEvalRun:
    """Run lm-eval once into ``out`` (a new folder) and read its results and samples back."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = lm_eval_command(model, model_args, tasks, out, limit=limit, log_samples=log_samples)
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=out, env=offline_env(out), capture_output=True, text=True, timeout=timeout)
        code, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, log = -9, f"{exc.stdout or ''}{exc.stderr or ''}\nlm-eval did not finish within {timeout:.0f} s"
    run = LmEvalRun(code, time.perf_counter() - started, cmd, log if isinstance(log, str) else str(log))
    found = sorted(out.glob("**/results_*.json"))
    if found:
        run.results = json.loads(found[-1].read_text("utf-8")).get("results", {})
    for task in tasks:
        files = sorted(out.glob(f"**/samples_{task}_*.jsonl"))
        if files:
            rows = [json.loads(x) for x in files[-1].read_text("utf-8").splitlines() if x.strip()]
            run.samples[task] = sorted(rows, key=lambda r: r["doc_id"])
    (out / "lm_eval.log").write_text(run.log, "utf-8")
    return run


def choice_requests(sample: dict) -> list[tuple[str, str, float, bool]]:
    """A multiple-choice sample's (context, continuation, loglikelihood, is_greedy) per choice, in choice order."""
    args = sample["arguments"]
    keys = sorted(args, key=lambda k: int(k.rsplit("_", 1)[1]))
    out = []
    for key, (ll, greedy) in zip(keys, sample["filtered_resps"]):
        out.append((args[key]["arg_0"], args[key]["arg_1"], float(ll), str(greedy) == "True"))
    return out


def generation(sample: dict) -> tuple[str, dict, str]:
    """A generate_until sample's (context, generation kwargs, generated text)."""
    arg = sample["arguments"]["gen_args_0"]
    gen_kwargs = arg["arg_1"]
    if isinstance(gen_kwargs, str):  # logged as its repr by some versions
        import ast

        gen_kwargs = ast.literal_eval(gen_kwargs)
    resp = sample["resps"][0]
    return arg["arg_0"], gen_kwargs, resp[0] if isinstance(resp, list) else resp
