"""The output folder of ``tandem eval``: report.md (base vs instruct raw/chat per task and metric, with stderr
and the differences), results.json (lm-eval's full results per run), questions.jsonl (every question, every
run) and two plots. matplotlib is imported only here, when a report is made."""

from __future__ import annotations

import json
from pathlib import Path

from desktop.core.plots import NO_MATPLOTLIB, plot_saver
from desktop.eval.questions import agreement, metric_table, question_rows

RUN_ORDER = ("base", "instruct-raw", "instruct-chat")
COLORS = {"base": "#b07a2a", "instruct-raw": "#3b6ea5", "instruct-chat": "#5a9e6f"}


def write_outputs(out_dir: Path, plan, results: list) -> dict:
    """Write every file; returns the summary ``--json`` prints."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_results = {r.run.name: r.results for r in results}
    (out_dir / "results.json").write_text(json.dumps(run_results, indent=2, default=str), encoding="utf-8")
    rows = [row for r in results for row in question_rows(r.run.name, r.model_name, r.samples)]
    with open(out_dir / "questions.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    table = metric_table(run_results)
    runs = [n for n in RUN_ORDER if n in run_results]
    agree = {other: agreement(rows, "base", other) for other in runs if other != "base"}
    plots, note = _plots(out_dir / "plots", table, runs, agree)
    summary = {
        "out": str(out_dir), "tasks": list(plan.tasks), "limit": plan.limit, "num_fewshot": plan.num_fewshot,
        "runs": [{"run": r.run.name, "model": r.model_name, "bos_added": r.add_bos, "n_ctx": r.n_ctx,
                  "seconds": round(r.seconds, 1), "truncated": len(r.truncated), "timing": r.timing}
                 for r in results],
        "metrics": table, "agreement": agree,
    }
    md = _markdown(plan, results, table, runs, agree, plots, note)
    (out_dir / "report.md").write_text(md, encoding="utf-8")
    return summary


def _fmt(v: float | None, se: float | None = None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f} ± {se:.3f}" if se is not None else f"{v:.3f}"


def _diff(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{b - a:+.3f}"


def _markdown(plan, results, table, runs, agree, plots, note) -> str:
    lines = ["# Base vs instruct: lm-eval", ""]
    for r in results:
        lines.append(f"- **{r.run.name}**: {r.model_name}, context {r.n_ctx} tokens, "
                     f"BOS {'added' if r.add_bos else 'not added'} by the model's rule (llama.cpp's add_bos)"
                     f"{', questions through its chat template' if r.run.chat else ''}; {r.seconds:.0f} s")
    lines += ["", f"Tasks: {', '.join(plan.tasks)}; limit {plan.limit or 'none'} per task; "
              f"few-shot {plan.num_fewshot if plan.num_fewshot is not None else 'the task default'}.", ""]
    head = ["task", "metric"] + runs
    diffs = [(a, b) for a, b in (("base", "instruct-raw"), ("base", "instruct-chat"),
                                 ("instruct-raw", "instruct-chat")) if a in runs and b in runs]
    head += [f"{b} − {a}" for a, b in diffs]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table:
        v, se = row["values"], row["stderr"]
        metric = row["metric"] + ("" if row["filter"] == "none" else f" ({row['filter']})")
        cells = [row["task"], metric] + [_fmt(v.get(n), se.get(n)) for n in runs]
        cells += [_diff(v.get(a), v.get(b)) for a, b in diffs]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Values ± lm-eval's standard error. A difference smaller than about twice the stderr is "
              "within noise.", ""]
    for other, per_task in agree.items():
        lines += [f"## Agreement: base vs {other}", "",
                  "| task | both right | only base | only instruct | neither |", "|---|---|---|---|---|"]
        for task, c in per_task.items():
            lines.append(f"| {task} | {c['both']} | {c['only_left']} | {c['only_right']} | {c['neither']} |")
        lines.append("")
    lines += ["## Where the time went", "",
              "| run | wall | scoring/generation requests | /tokenize round trips | template renders | lm-eval itself |",
              "|---|---|---|---|---|---|"]
    for r in results:
        t = r.timing or {}
        spent = t.get("requests_s", 0.0) + t.get("tokenize_s", 0.0) + t.get("render_s", 0.0)
        lines.append(f"| {r.run.name} | {r.seconds:.1f} s | {t.get('requests', 0)} in {t.get('requests_s', 0.0):.1f} s "
                     f"| {t.get('tokenize', 0)} in {t.get('tokenize_s', 0.0):.1f} s "
                     f"| {t.get('render', 0)} in {t.get('render_s', 0.0):.1f} s | {max(0.0, r.seconds - spent):.1f} s |")
    lines += ["", "Requests answered from the cache (a resumed run) cost nothing and are not counted.", ""]
    truncated = [(r.run.name, t) for r in results for t in r.truncated]
    if truncated:
        lines += [f"## Truncated requests ({len(truncated)})", "",
                  "Longer than the model's context: lm-eval cut them from the left.", ""]
        lines += [f"- {run}: {t['tokens']} tokens > {t['max_length']}: {t['context_start']!r}"
                  for run, t in truncated[:50]]
        lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{title}]({path})" for title, path in plots.items()] + [""]
    if note:
        lines += [note, ""]
    lines += ["Every question, every run: `questions.jsonl`. lm-eval's full results: `results.json`.", ""]
    return "\n".join(lines)


def _plots(plot_dir: Path, table: list[dict], runs: list[str], agree: dict) -> tuple[dict[str, str], str]:
    plots = plot_saver(plot_dir)
    if plots is None:
        return {}, NO_MATPLOTLIB
    plt, save, out = plots

    if table:
        fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(table) + 1.5), 3.2))
        width = 0.8 / max(1, len(runs))
        for i, run in enumerate(runs):
            xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(table))]
            vals = [row["values"].get(run) or 0.0 for row in table]
            errs = [row["stderr"].get(run) or 0.0 for row in table]
            ax.bar(xs, vals, width, yerr=errs, capsize=3, color=COLORS.get(run), label=run)
        ax.set_xticks(range(len(table)), [f"{r['task']}\n{r['metric']}" for r in table], fontsize=8)
        ax.set_ylabel("score")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8)
        save(fig, "metrics.png", "Scores with standard errors")
    cells = [(other, task, c) for other, per_task in agree.items() for task, c in per_task.items()]
    if cells:
        fig, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells), 3.0), squeeze=False)
        for ax, (other, task, c) in zip(axes[0], cells):
            grid = [[c["both"], c["only_left"]], [c["only_right"], c["neither"]]]
            top = max(1, max(max(r) for r in grid))
            ax.imshow(grid, cmap="Blues", vmin=0, vmax=top)
            for (y, x), text in {(0, 0): "both right", (0, 1): "only base",
                                 (1, 0): f"only {other}", (1, 1): "neither"}.items():
                ax.text(x, y, f"{text}\n{grid[y][x]}", ha="center", va="center", fontsize=8,
                        color="white" if grid[y][x] > top / 2 else "black")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{task}: base vs {other}", fontsize=8)
        save(fig, "agreement.png", "Agreement, question by question")
    return out, ""
