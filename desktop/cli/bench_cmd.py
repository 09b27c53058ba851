"""`tandem bench`: Tandem's engine measured side by side with llama.cpp's own llama-bench.

The suite lives in ``bench/`` at the top of a source checkout (it builds llama-bench from source and
writes its results there) and is not part of the installed package, so the command is offered only where
``bench`` can be imported as it stands: ``python -m desktop bench`` from a checkout, or a checkout on
PYTHONPATH. An installed app does not list a command it would refuse. This module only parses the options
and hands over; the bench modules are imported when the command runs, never when ``tandem`` starts.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from desktop.cli.engine_cmds import whole_number

SHAPES = ("0.5b", "1.5b")
_positive = whole_number(1)  # threads, repetitions and depth: 0 of them measures nothing


def available() -> bool:
    """Whether a checkout's ``bench/`` suite is importable here (found, not imported: ``tandem`` starts fast)."""
    spec = importlib.util.find_spec("bench")
    return bool(spec and spec.origin and (Path(spec.origin).parent / "run.py").is_file())


def register(subparsers) -> None:
    if not available():
        return
    p = subparsers.add_parser(
        "bench",
        help="benchmark decode/prefill/latency/memory against llama-bench (from a source checkout)",
        description="Generate a random-weight model with real 0.5B/1.5B layer shapes, build llama-bench from the "
                    "llama.cpp inside the installed llama-cpp-python (once, cached), and measure Tandem's engine "
                    "against it in interleaved runs: decode, prefill, logprobs cost, chat time to first token, "
                    "two models at once, cold start, memory. With --model PATH, the engine figures on any GGUF "
                    "file. Prints PASS/FAIL per target and writes JSON and Markdown to bench/results/.",
    )
    p.add_argument("--quick", action="store_true", help="fewer repetitions and shorter runs (a few minutes)")
    p.add_argument("--shape", choices=SHAPES, default="0.5b", help="model shape (default: 0.5b)")
    p.add_argument("--threads", type=_positive, default=None, metavar="N",
                   help="threads for both Tandem and llama-bench (default: the engine's default)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="results folder (default: bench/results)")
    p.add_argument("--reps", type=_positive, default=None, metavar="N", help="repetitions per figure")
    p.add_argument("--no-reference", action="store_true", help="skip llama-bench: Tandem's own figures only")
    p.add_argument("--only", default="", metavar="GROUPS",
                   help="comma-separated subset: gui, decode, prefill, logprobs, chat, compare, memory, stall "
                        "(with --model: metadata, decode, prefill, logprobs)")
    p.add_argument("--model", type=Path, action="append", default=None, metavar="PATH",
                   help="bench your own GGUF file instead of the random-weight shapes (repeatable): metadata "
                        "read time, decode at depth 0 and --depth, prefill and top-5 logprobs cost, each "
                        "against llama-bench at its defaults, with PASS/FAIL per target")
    p.add_argument("--depth", type=_positive, default=None, metavar="N",
                   help="context before the deep decode figure (default 2000)")
    p.add_argument("--serve", action="store_true",
                   help="the serve bench instead (bench/serve_bench.py, on the real pair or --model files): "
                        "streaming through the API vs the engine, 4 clients vs llama-server --parallel 4, lm-eval "
                        "vs llama_cpp.server, time to first byte; --only stream,parallel,lmeval,ttfb")
    p.add_argument("--limit", type=_positive, default=None, metavar="N",
                   help="with --serve: lm-eval on the first N questions only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench import run as bench_run

    return bench_run.run_and_print(args)
