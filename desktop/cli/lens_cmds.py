"""`tandem shift` and `tandem experiment`: the alignment lens (token shift, Lin et al., ICLR 2024) from the
command line, for one prompt or a whole prompt set with a report."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from desktop.cli.engine_cmds import UsageError, add_load_flags, count
from desktop.core.errors import ExperimentError, LibraryError

# The CLI's names for the base model's context; "template" is the lens's CHAT_CONTEXT ("chat").
BASE_CONTEXTS = {"plain": "plain", "urial": "urial", "icl": "icl", "template": "chat"}
CONTEXT_HELP = ("what the base model reads before the answer: plain (the query, as the paper; default), urial "
                "(the URIAL code's '# Query:' ... '# Answer:' wrapper), icl (the in-context alignment preset: "
                "preamble + 3 examples, then the wrapper) or template (the query through the base model's own "
                "chat template: the same file on both sides then gives exactly 100 %% unshifted)")


def model_path(text: str) -> str:
    """A model argument: a path to a .gguf file, or a name from `tandem models list`."""
    p = Path(text).expanduser()
    if p.exists() or p.suffix.lower() == ".gguf" or "/" in text or "\\" in text:
        return str(p)  # a path (a missing one fails at load with a one-line reason)
    from desktop.core.library import Library

    entries = Library().scan()
    matches = [e for e in entries if text in (e.name, e.path.name)]
    own = [e for e in matches if e.source == "library"]
    chosen = own if len(own) == 1 else matches
    if len(chosen) == 1:
        return str(chosen[0].path)
    if not chosen:
        raise LibraryError(f"no model named {text!r} in the library and no such file; "
                           "`tandem models list` shows the names")
    raise LibraryError(f"{text!r} matches several models; give the path: "
                       + ", ".join(str(e.path) for e in chosen))


def _context(args: argparse.Namespace) -> str:
    return BASE_CONTEXTS[args.base_context or ("icl" if args.icl else "urial" if args.urial else "plain")]


def _load_pair(args: argparse.Namespace):
    """Load both models (in parallel) and refuse at once unless they share a vocabulary (and the base model
    has the chat template its context may ask for)."""
    from desktop.cli.compare_cmds import _load_both
    from desktop.lens.analyze import require_context, require_sibling

    args.base, args.instruct = model_path(args.base), model_path(args.instruct)
    base, instruct = _load_both(args)
    try:
        require_sibling(base, instruct)
        require_context(base, _context(args))
    except Exception:
        base.close()
        instruct.close()
        raise
    return base, instruct


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, metavar="MODEL", help="the base model: a path or a library name")
    p.add_argument("--instruct", required=True, metavar="MODEL",
                   help="its instruct sibling (same vocabulary): a path or a library name")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--base-context", choices=tuple(BASE_CONTEXTS), default=None, help=CONTEXT_HELP)
    how.add_argument("--urial", action="store_true", help="short for --base-context urial")
    how.add_argument("--icl", action="store_true", help="short for --base-context icl")
    p.add_argument("--system", default=None, metavar="S", help="system prompt for the instruct model")
    p.add_argument("--max-tokens", type=count, default=256, help="answer length limit (default 256)")
    p.add_argument("--top-k", type=count, default=20,
                   help="alternatives per position from each model, for the top-3 and the KL (default 20)")
    add_load_flags(p)


def _check_top_k(args: argparse.Namespace) -> None:
    if not 3 <= args.top_k <= 100:
        raise UsageError("--top-k must be between 3 and 100")


def cmd_shift(args: argparse.Namespace) -> int:
    from desktop.lens import analyze
    from desktop.lens.shift import CONTEXT_NOTES, KL_NOTE, PAPER_ROWS

    _check_top_k(args)
    context = _context(args)
    base, instruct = _load_pair(args)
    try:
        if args.answer is not None:
            answer, finish = args.answer, "given"
        else:
            gen = analyze.generate_instruct(instruct, args.prompt, analyze.greedy(args.max_tokens),
                                            context=context, system=args.system)
            answer, finish = list(gen.token_ids), gen.finish_reason
            answer_text = gen.text
        result, inst, _ = analyze.shift_answer(base, instruct, args.prompt, answer, context=context,
                                               top_k=args.top_k, system=args.system)
    finally:
        base.close()
        instruct.close()
    if args.answer is not None:
        answer_text = args.answer
    if args.json:
        out = {"prompt": args.prompt, "answer": answer_text, "answer_source": finish, **result.as_json()}
        print(json.dumps(out, ensure_ascii=False))
        return 0
    sh = result.shares
    print(f"Answer ({'given' if finish == 'given' else 'greedy, ' + finish}; {sh.n} tokens):")
    print(answer_text)
    print()
    print(f"Base context: {context}: {CONTEXT_NOTES[context]}. Instruct context: {result.instruct_context}.")
    if not sh.n:
        print("The answer has no tokens: nothing to measure.")
        return 0
    print(f"{'':42}{'unshifted':>10}{'marginal':>10}{'shifted':>10}")
    print(f"{'this pair':42}{sh.unshifted:9.1f}%{sh.marginal:9.1f}%{sh.shifted:9.1f}%")
    for p in PAPER_ROWS:
        print(f"{p.pair + ' (paper)':42}{p.unshifted:9.1f}%{p.marginal:9.1f}%{p.shifted:9.1f}%")
    print("By position: " + "; ".join(
        f"{label}: {s.unshifted:.0f}/{s.marginal:.0f}/{s.shifted:.0f} % of {s.n}"
        for label, s in result.shares_by_position().items() if s.n))
    shifted = [t for t in result.tokens if t.cls == "shifted"]
    if shifted:
        print(f"\nShifted tokens ({len(shifted)}):")
        for t in shifted:
            alts = ", ".join(f"{a.text!r} {a.logprob:.2f}" for a in t.base_top)
            inst_lp = "–" if t.instruct_logprob is None else f"{t.instruct_logprob:.2f}"
            print(f"  #{t.position + 1:<4} {t.text!r:<16} rank {t.rank:<6} logprob base {t.base_logprob:.2f} / "
                  f"instruct {inst_lp}; base top-3: {alts}")
    else:
        print("\nNo shifted tokens.")
    if result.mean_kl is not None:
        print(f"\nMean divergence {result.mean_kl:.4f} nats: {KL_NOTE.format(k=result.top_k)}")
    return 0


class _Bar:
    """A one-line progress bar with time left, on stderr (a line per prompt when not a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()

    def __call__(self, p) -> None:
        width = 24
        filled = int(width * p.done / p.total) if p.total else width
        bar = "#" * filled + "." * (width - filled)
        if not p.current:
            left = f"done in {_clock(time.monotonic() - self.started)}"
        elif p.eta_s is None:
            left = "estimating time left"
        else:
            left = f"{_clock(p.eta_s)} left"
        resumed = f" ({p.skipped} done before)" if p.skipped else ""
        now = f"  {p.current}" if p.current else ""
        line = f"[{bar}] {p.done}/{p.total}{resumed}  {left}{now}"
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line + ("" if p.current else "\n"))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def cmd_experiment(args: argparse.Namespace) -> int:
    from desktop.lens import experiment

    _check_top_k(args)
    prompts_file = args.prompts or str(experiment.builtin_prompts_path())
    prompts = experiment.load_prompts(prompts_file)
    if args.limit:
        prompts = prompts[:args.limit]
    if args.temperature < 0:
        raise UsageError("--temperature must be 0 (greedy) or more")
    base, instruct = _load_pair(args)
    try:
        settings = experiment.Settings(
            base=args.base, instruct=args.instruct, vocab_id=base.vocab_id, context=_context(args),
            temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens, top_k=args.top_k,
            system=args.system, prompts_sha=experiment.prompts_sha(prompts))
        exp = experiment.Experiment(args.out, settings, prompts)
        report = exp.run(base, instruct, progress=_Bar())
    finally:
        base.close()
        instruct.close()
    print(report)
    if exp.failures:
        pid, reason = next(iter(exp.failures.items()))
        more = f" and {len(exp.failures) - 1} more" if len(exp.failures) > 1 else ""
        raise ExperimentError(f"prompt {pid} failed ({reason}){more}; the report has the others, and running "
                              "the same command again retries the failed ones")
    return 0


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def register(sub) -> None:
    p = sub.add_parser("shift", help="token shift of an instruct answer against its base model (URIAL)")
    _add_common(p)
    p.add_argument("--answer", default=None, metavar="TEXT",
                   help="the instruct answer to measure (default: generate it greedily)")
    p.add_argument("--json", action="store_true", help="print one JSON object with every token")
    p.add_argument("prompt", metavar="PROMPT")
    p.set_defaults(func=cmd_shift)

    p = sub.add_parser("experiment", help="token shift and cross-scoring over a prompt set, with a report")
    _add_common(p)
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help=".jsonl ({\"prompt\": ...} per line) or .txt (a prompt per line); "
                        "default: the built-in set of 51 prompts")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder; run again to resume")
    p.add_argument("--seed", type=count, default=0, help="sampling seed (recorded; greedy by default)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy, as in the paper (default)")
    p.add_argument("--limit", type=count, default=0, metavar="N", help="only the first N prompts")
    p.set_defaults(func=cmd_experiment)
