"""The experiment's report: ``results.json`` (everything, per token), ``report.md`` (for people) and PNG
plots. Built from the per-prompt records alone, so a resumed run's report is the same as an uninterrupted
one's. matplotlib is imported here, only when a report is made (never on the app's start path); without
it the report is written without plots and says so.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from desktop.core.plots import NO_MATPLOTLIB, plot_saver
from desktop.lens.shift import (
    CLASSES,
    CONTEXT_NOTES,
    KL_NOTE,
    PAPER_ROWS,
    POSITION_BUCKETS,
    Shares,
)

COLORS = {"unshifted": "#4c9a6a", "marginal": "#e0b040", "shifted": "#c8553d"}
MAX_PROFILE_POSITION = 100  # the shift-by-position line covers the first this-many answer tokens


def summarize(records: list[dict]) -> dict:
    """Pooled figures over every answer token of every record (token-weighted, as the paper's ratios)."""
    classes = [t["class"] for r in records for t in r["shift"]["tokens"]]
    by_pos = {label: Shares.of([t["class"] for r in records for t in r["shift"]["tokens"][lo:hi]]).as_json()
              for label, lo, hi in POSITION_BUCKETS}
    per_answer = [Shares.of([t["class"] for t in r["shift"]["tokens"]]) for r in records]
    per_answer = [s for s in per_answer if s.n]
    counts: dict[str, int] = {}
    for r in records:
        for t in r["shift"]["tokens"]:
            if t["class"] == "shifted":
                key = t["text"].strip() or repr(t["text"])
                counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:20]
    profile = []
    for pos in range(MAX_PROFILE_POSITION):
        at = [r["shift"]["tokens"][pos]["class"] for r in records if len(r["shift"]["tokens"]) > pos]
        if not at:
            break
        profile.append({"position": pos + 1, **Shares.of(at).as_json()})
    kls = [t["kl"] for r in records for t in r["shift"]["tokens"] if t.get("kl") is not None]

    def cross(which: str, side: str) -> float | None:
        vals = [r["cross"][which][side] for r in records if r["cross"][which][side] is not None]
        return round(statistics.median(vals), 4) if vals else None

    return {
        "prompts": len(records),
        "tokens": len(classes),
        "shares": Shares.of(classes).as_json(),
        "shares_mean_per_answer": {c: (round(statistics.fmean(getattr(s, c) for s in per_answer), 3)
                                       if per_answer else None) for c in CLASSES},
        "shares_by_position": by_pos,
        "position_profile": profile,
        "top_shifted": [{"text": t, "count": c} for t, c in top],
        "mean_kl": round(statistics.fmean(kls), 6) if kls else None,
        "median_perplexity": {
            "instruct_answer": {"own": cross("instruct_answer", "own"), "other": cross("instruct_answer", "other")},
            "base_answer": {"own": cross("base_answer", "own"), "other": cross("base_answer", "other")},
        },
    }


def write_report(out_dir: Path, settings: dict, prompts: list, records: list[dict],
                 failures: dict[str, str] | None = None) -> Path:
    """Write results.json, the plots and report.md into ``out_dir``; returns report.md's path."""
    out_dir = Path(out_dir)
    records = sorted(records, key=lambda r: r["index"])
    summary = summarize(records)
    missing = [q.id for i, q in enumerate(prompts) if i not in {r["index"] for r in records}]
    results = {
        "settings": settings,
        "context_note": CONTEXT_NOTES.get(settings.get("context", ""), ""),
        "kl_note": KL_NOTE.format(k=settings.get("top_k", 0)),
        "classes": "rank 1 unshifted, 2-3 marginal, above 3 shifted (Lin et al., ICLR 2024)",
        "paper": [{"pair": p.pair, "unshifted": p.unshifted, "marginal": p.marginal, "shifted": p.shifted}
                  for p in PAPER_ROWS],
        "summary": summary,
        "missing": missing,
        "failed": failures or {},
        "records": records,
    }
    _write(out_dir / "results.json", json.dumps(results, ensure_ascii=False, indent=1))
    plots, plot_note = _plots(out_dir / "plots", summary, records)
    md = _markdown(settings, summary, records, missing, plots, plot_note, failures or {})
    path = out_dir / "report.md"
    _write(path, md)
    return path


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1f} %"


def _md_cell(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text.replace("|", "\\|")


def _markdown(settings: dict, summary: dict, records: list[dict], missing: list[str], plots: dict[str, str],
              plot_note: str, failures: dict[str, str]) -> str:
    s = summary["shares"]
    lines = [
        "# Token shift report",
        "",
        f"- Base: `{settings['base']}`",
        f"- Instruct: `{settings['instruct']}`",
        f"- Vocabulary: `{settings['vocab_id']}` (the same on both sides)",
        f"- Base context: **{settings['context']}**: {CONTEXT_NOTES.get(settings['context'], '')}",
        f"- Decoding: {'greedy' if not settings['temperature'] else 'temperature ' + str(settings['temperature'])}"
        f", seed {settings['seed']}, up to {settings['max_tokens']} tokens",
        f"- Prompts: {summary['prompts']} answered, {summary['tokens']} instruct answer tokens",
        "- Classes: the rank of each instruct answer token among the base model's next-token choices; "
        "1 unshifted, 2-3 marginal, above 3 shifted (Lin et al., *The Unlocking Spell on Base LLMs*, ICLR 2024).",
        "",
    ]
    if missing:
        lines += [f"**Not finished:** {len(missing)} prompts ({', '.join(missing[:20])}"
                  f"{'…' if len(missing) > 20 else ''}); run the same command again to continue.", ""]
    for pid, reason in failures.items():
        lines.append(f"- **{_md_cell(pid, 20)} failed:** {_md_cell(reason, 200)}")
    if failures:
        lines.append("")
    partial = _partial_lines(records)
    if partial:
        lines += ["**Partly measured** (the other parts of these prompts are in the figures):", "", *partial, ""]
    lines += ["## Class shares", "", "| pair | unshifted | marginal | shifted |", "|---|---|---|---|",
              f"| **this pair** (pooled over tokens) | {_pct(s['unshifted'])} | {_pct(s['marginal'])} | "
              f"{_pct(s['shifted'])} |"]
    m = summary["shares_mean_per_answer"]
    lines.append(f"| this pair (mean per answer) | {_pct(m['unshifted'])} | {_pct(m['marginal'])} | "
                 f"{_pct(m['shifted'])} |")
    for p in PAPER_ROWS:
        lines.append(f"| {p.pair} (paper) | {p.unshifted:.1f} % | {p.marginal:.1f} % | {p.shifted:.1f} % |")
    lines += ["", "## By position in the answer", "", "| tokens | n | unshifted | marginal | shifted |",
              "|---|---|---|---|---|"]
    for label, sh in summary["shares_by_position"].items():
        lines.append(f"| {label} | {sh['n']} | {_pct(sh['unshifted'])} | {_pct(sh['marginal'])} | "
                     f"{_pct(sh['shifted'])} |")
    lines += ["", "## Most frequent shifted tokens", ""]
    if summary["top_shifted"]:
        lines += ["| token | count |", "|---|---|"]
        lines += [f"| `{_md_cell(t['text'], 30)}` | {t['count']} |" for t in summary["top_shifted"]]
    else:
        lines.append("No shifted tokens.")
    ppl = summary["median_perplexity"]
    lines += ["", "## Cross-scoring (median perplexity)", "",
              "| answer | under its own model | under the other model |", "|---|---|---|",
              f"| instruct answer | {ppl['instruct_answer']['own']} | {ppl['instruct_answer']['other']} (base) |",
              f"| base answer | {ppl['base_answer']['own']} | {ppl['base_answer']['other']} (instruct) |",
              "", f"Mean per-position divergence: {summary['mean_kl']} nats. "
              + KL_NOTE.format(k=settings.get("top_k", 0)), ""]
    lines += ["## Plots", ""]
    if plots:
        lines += [f"![{title}]({rel})" for title, rel in plots.items()]
    else:
        lines.append(plot_note)
    lines += ["", "## Every prompt", "",
              "| # | id | kind | prompt | tokens | unshifted | shifted | first shifted tokens | ppl own / other |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        sh = r["shift"]["shares"]
        first = [t["text"] for t in r["shift"]["tokens"] if t["class"] == "shifted"][:5]
        cross = r["cross"]["instruct_answer"]
        lines.append(f"| {r['index'] + 1} | {_md_cell(r['id'], 20)} | {_md_cell(r.get('kind', ''), 12)} | "
                     f"{_md_cell(r['prompt'], 50)} | {sh['n']} | {_pct(sh['unshifted'])} | {_pct(sh['shifted'])} | "
                     f"{_md_cell(' '.join(repr(x) for x in first), 40)} | {cross['own']} / {cross['other']} |")
    lines += ["", "Every token, both answers and the settings are in `results.json`.", ""]
    return "\n".join(lines)


def _partial_lines(records: list[dict]) -> list[str]:
    """A line per part of a prompt that failed (with its reason) or was scored only in its beginning."""
    lines = []
    for r in records:
        pid = _md_cell(r["id"], 20)
        for name, reason in (r.get("failed") or {}).items():
            lines.append(f"- **{pid}**, {name} failed: {_md_cell(reason, 200)}")
        for name, c in (r.get("cut") or {}).items():
            lines.append(f"- **{pid}**, {name}: cut, its first {c['scored']} of {c['of']} tokens scored "
                         "(the rest did not fit the context)")
    return lines


def _plots(plot_dir: Path, summary: dict, records: list[dict]) -> tuple[dict[str, str], str]:
    """The four PNG plots; returns ({title: relative path}, note when none could be drawn)."""
    plots = plot_saver(plot_dir)
    if plots is None:
        return {}, NO_MATPLOTLIB
    plt, save, out = plots

    # 1. class shares, this pair beside the paper's rows
    rows = [("this pair", summary["shares"])] + [
        (p.pair + " (paper)", {"unshifted": p.unshifted, "marginal": p.marginal, "shifted": p.shifted})
        for p in PAPER_ROWS]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    for y, (_label, sh) in enumerate(rows):
        left = 0.0
        for c in CLASSES:
            v = sh.get(c) or 0.0
            ax.barh(y, v, left=left, color=COLORS[c], label=c if y == 0 else None)
            if v >= 6:
                ax.text(left + v / 2, y, f"{v:.1f}", ha="center", va="center", fontsize=8, color="white")
            left += v
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of answer tokens")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    save(fig, "class_shares.png", "Class shares beside the paper's pairs")

    # 2. shift by position: bucket bars and the per-position line
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3), gridspec_kw={"width_ratios": [1, 2]})
    labels = list(summary["shares_by_position"])
    bottom = [0.0] * len(labels)
    for c in CLASSES:
        vals = [summary["shares_by_position"][k][c] or 0.0 for k in labels]
        a1.bar(labels, vals, bottom=bottom, color=COLORS[c], label=c)
        bottom = [b + v for b, v in zip(bottom, vals)]
    a1.set_ylabel("% of tokens")
    a1.set_xlabel("answer tokens")
    a1.set_ylim(0, 100)
    prof = summary["position_profile"]
    xs = [p["position"] for p in prof]
    a2.plot(xs, [p["shifted"] or 0.0 for p in prof], color=COLORS["shifted"], label="shifted")
    a2.plot(xs, [(p["shifted"] or 0.0) + (p["marginal"] or 0.0) for p in prof], color=COLORS["marginal"],
            label="shifted + marginal")
    a2.set_xlabel("position in the answer (token)")
    a2.set_ylabel("% of answers")
    a2.set_ylim(0, 104)
    a2.legend(fontsize=8)
    save(fig, "shift_by_position.png", "Shift by position")

    # 3. top shifted tokens
    top = summary["top_shifted"][:15]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.3 * len(top) + 1)))
    if top:
        ax.barh(range(len(top)), [t["count"] for t in top], color=COLORS["shifted"])
        ax.set_yticks(range(len(top)), [repr(t["text"]) for t in top], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("times shifted")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.text(0.5, 0.5, "no shifted tokens", ha="center", va="center")
        ax.set_axis_off()
    save(fig, "top_shifted_tokens.png", "Most frequent shifted tokens")

    # 4. perplexity under own vs other model
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for which, color, label in (("instruct_answer", "#3b6ea5", "instruct answers"),
                                ("base_answer", "#888888", "base answers")):
        pts = [(r["cross"][which]["own"], r["cross"][which]["other"]) for r in records
               if r["cross"][which]["own"] and r["cross"][which]["other"]]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, color=color, label=label, alpha=0.8)
    lims = [v for r in records for w in ("instruct_answer", "base_answer")
            for v in (r["cross"][w]["own"], r["cross"][w]["other"]) if v]
    if lims:
        lo, hi = min(lims), max(lims)
        ax.plot([lo, hi], [lo, hi], color="#bbbbbb", lw=1, zorder=0)
        if hi / max(lo, 1e-9) > 20:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("perplexity under its own model")
    ax.set_ylabel("perplexity under the other model")
    save(fig, "perplexity_own_vs_other.png", "Perplexity under own vs other model")
    return out, ""
