"""Figures, targets and the result files (JSON for tools, Markdown for people and the README).

A ``Figure`` is one measured row: the app's value, the reference it is compared with (llama-bench measured
in the same run, or the app's own baseline, e.g. logprobs off), their ratio and the target it is judged
by. Samples are kept so a reader can see the spread behind every median.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Compare = Literal[">=", "<="]


@dataclass(frozen=True)
class Target:
    """``measure`` (the ratio or the value, as named) must be ``op`` ``bound``."""

    measure: Literal["ratio", "value"]
    op: Compare
    bound: float
    text: str  # how the README states it, e.g. ">= 97 % of llama-bench"

    def check(self, value: float | None, ratio: float | None) -> bool | None:
        x = ratio if self.measure == "ratio" else value
        if x is None:
            return None
        return x >= self.bound if self.op == ">=" else x <= self.bound


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    value: float | None  # the app's median
    reference: float | None = None  # the reference's median (same unit)
    reference_label: str = ""  # what the reference is, e.g. "llama-bench"
    target: Target | None = None
    samples: tuple[float, ...] = ()
    reference_samples: tuple[float, ...] = ()
    note: str = ""
    extra: dict = field(default_factory=dict)
    # app / reference of each rep, the two measured back to back: on a shared machine whose speed drifts by
    # ±10 % over a minute, the median of these is the ratio (drift between reps cancels out of each pair)
    pair_ratios: tuple[float, ...] = ()

    @property
    def ratio(self) -> float | None:
        if self.pair_ratios:
            return statistics.median(self.pair_ratios)
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def ratio_of_medians(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def passed(self) -> bool | None:
        return self.target.check(self.value, self.ratio) if self.target else None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a" if self.target else "info"}[self.passed]

    def as_json(self) -> dict:
        data = asdict(self)
        data["ratio"] = self.ratio
        data["ratio_of_medians"] = self.ratio_of_medians
        data["verdict"] = self.verdict
        return data


def median(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


@dataclass
class Results:
    """Everything one bench run produced."""

    machine: dict
    config: dict
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # skipped figures, noise, reference problems

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def note(self, text: str) -> None:
        self.notes.append(text)

    def as_json(self) -> dict:
        return {"machine": self.machine, "config": self.config,
                "figures": [f.as_json() for f in self.figures], "notes": self.notes,
                "summary": {"pass": sum(f.passed is True for f in self.figures),
                            "fail": sum(f.passed is False for f in self.figures),
                            "not_measured": sum(f.target is not None and f.passed is None for f in self.figures)}}


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    if unit in ("tok/s",):
        text = f"{x:.1f}"
    elif unit == "s":
        text = f"{x:.3f}"
    elif unit == "ms":
        text = f"{x:.1f}"
    elif unit == "MB":
        text = f"{x:.0f}"
    else:
        text = f"{x:.3g}"
    return f"{text} {unit}".strip()


def _fmt_ratio(r: float | None, fig: Figure) -> str:
    if r is None:
        return "—"
    if fig.unit == "tok/s":
        return f"{100 * r:.1f} %"
    return f"{r:.2f}×"


def markdown_table(results: Results) -> str:
    """The table the README shows: one row per figure with its verdict."""
    lines = ["| Figure | Tandem | Reference | Ratio | Target | Result |",
             "|---|---|---|---|---|---|"]
    for f in results.figures:
        ref = f"{_fmt(f.reference, f.unit)} ({f.reference_label})" if f.reference is not None else "—"
        target = f.target.text if f.target else ""
        lines.append(f"| {f.label} | {_fmt(f.value, f.unit)} | {ref} | {_fmt_ratio(f.ratio, f)} | {target} "
                     f"| {f.verdict} |")
    return "\n".join(lines)


def machine_lines(machine: dict) -> list[str]:
    keys = [("cpu", "CPU"), ("cores", "cores"), ("ram_gb", "RAM (GB)"), ("os", "OS"), ("python", "Python"),
            ("llama_cpp_python", "llama-cpp-python"), ("backend", "backend"), ("gpus", "GPUs"),
            ("threads", "threads")]
    return [f"- {label}: {machine[k]}" for k, label in keys if machine.get(k) not in (None, "", [])]


def pairs_text(fig: Figure) -> str:
    """How the ratio was formed, with the spread a reader needs to judge it."""
    if not fig.pair_ratios:
        return ""
    lo, hi = min(fig.pair_ratios), max(fig.pair_ratios)
    rom = fig.ratio_of_medians
    return (f"ratio = median of {len(fig.pair_ratios)} back-to-back pairs (pairs range {_fmt_ratio(lo, fig)} to "
            f"{_fmt_ratio(hi, fig)}; ratio of the medians {_fmt_ratio(rom, fig)})")


def figure_note(fig: Figure) -> str:
    return "; ".join(x for x in (fig.note, pairs_text(fig)) if x)


def markdown_report(results: Results) -> str:
    cfg = results.config
    parts = [f"# Tandem benchmark — {cfg.get('shape', '?')} shape, {cfg.get('started', '')}", "",
             *machine_lines(results.machine), "", markdown_table(results), ""]
    details = [f for f in results.figures if f.note or f.pair_ratios]
    if details:
        parts += ["## Notes per figure", ""] + [f"- **{f.label}**: {figure_note(f)}" for f in details] + [""]
    if results.notes:
        parts += ["## Run notes", ""] + [f"- {n}" for n in results.notes] + [""]
    if cfg.get("command"):
        parts += ["Reproduce: `" + cfg["command"] + "`", ""]
    return "\n".join(parts)


def write_results(results: Results, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` (and refresh ``latest.*``); returns the two paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = json.dumps(results.as_json(), indent=2, default=str)
    text = markdown_report(results)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(data + "\n", "utf-8")
    md_path.write_text(text, "utf-8")
    (out_dir / "latest.json").write_text(data + "\n", "utf-8")
    (out_dir / "latest.md").write_text(text, "utf-8")
    return json_path, md_path
