"""Question by question: each run's answer to every question (from lm-eval's logged samples), and how the base
and instruct runs agree. Pure Python on plain dicts, so the report, the tests and the app share it."""

from __future__ import annotations

import math
from typing import Any

# lm-eval's per-result keys that are not metrics
_NOT_METRICS = {"name", "alias", "sample_len", "samples", " ", ""}


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def question_rows(run_name: str, model: str, samples: dict[str, list[dict]]) -> list[dict]:
    """One row per question: the prompt, each choice's loglikelihood and the one chosen (multiple choice),
    or the answer generated (generate_until); correct or not by lm-eval's own first metric."""
    rows = []
    for task, items in samples.items():
        for s in items:
            args = s.get("arguments") or []
            doc = s.get("doc") or {}
            first = args[0] if args else ("", "")
            metrics = list(s.get("metrics") or [])
            primary = metrics[0] if metrics else None
            row: dict[str, Any] = {
                "task": task, "doc_id": s.get("doc_id"), "run": run_name, "model": model,
                "question": doc.get("question") if isinstance(doc.get("question"), str) else None,
                "prompt": first[0] if isinstance(first, (list, tuple)) and first else str(first),
                "target": s.get("target"),
            }
            resps = s.get("filtered_resps")
            if _is_choices(args, resps):
                lls = [float(r[0]) for r in resps]
                row["choices"] = [a[1] for a in args]
                row["loglikelihoods"] = lls
                row["greedy"] = [bool(r[1]) for r in resps]
                row["choice"] = max(range(len(lls)), key=lls.__getitem__)
            else:
                answer = resps[0] if isinstance(resps, list) and resps else resps
                row["answer"] = answer if isinstance(answer, str) else str(answer)
            row["metrics"] = {m: _num(s.get(m)) for m in metrics}
            row["metric"] = primary
            value = _num(s.get(primary)) if primary else None
            row["correct"] = None if value is None else value >= 1.0
            rows.append(row)
    return rows


def _is_choices(args: list, resps: Any) -> bool:
    return (isinstance(resps, list) and len(resps) == len(args) and len(args) > 0
            and all(isinstance(r, (list, tuple)) and len(r) == 2 for r in resps)
            and all(isinstance(a, (list, tuple)) and len(a) == 2 for a in args))


def agreement(rows: list[dict], left: str, right: str) -> dict[str, dict[str, int]]:
    """Per task, the base-vs-instruct matrix: both right, only ``left`` right, only ``right`` right,
    neither (questions both runs answered)."""
    by: dict[tuple[str, Any, str], bool | None] = {(r["task"], r["doc_id"], r["run"]): r["correct"] for r in rows}
    out: dict[str, dict[str, int]] = {}
    for task, doc_id, run in list(by):
        if run != left:
            continue
        a, b = by.get((task, doc_id, left)), by.get((task, doc_id, right))
        if a is None or b is None:
            continue
        cell = "both" if a and b else "only_left" if a else "only_right" if b else "neither"
        counts = out.setdefault(task, {"both": 0, "only_left": 0, "only_right": 0, "neither": 0})
        counts[cell] += 1
    return out


def metric_table(run_results: dict[str, dict]) -> list[dict]:
    """Rows of (task, metric, filter) with each run's value and stderr, from lm-eval's ``results``."""
    rows: dict[tuple[str, str, str], dict] = {}
    for run, results in run_results.items():
        for task, metrics in (results.get("results") or {}).items():
            for key, value in metrics.items():
                if key in _NOT_METRICS or "_stderr" in key or "," not in key:
                    continue
                metric, filt = key.split(",", 1)
                row = rows.setdefault((task, metric, filt), {"task": task, "metric": metric, "filter": filt,
                                                             "values": {}, "stderr": {}})
                row["values"][run] = _num(value)
                row["stderr"][run] = _num(metrics.get(f"{metric}_stderr,{filt}"))
    return list(rows.values())
