"""`tandem eval`: the base and instruct models on lm-eval benchmarks, side by side, question by question.

lm-eval is an optional extra: nothing here imports it at start-up, and without it the command says in one
line what to install. The work is in ``desktop.eval`` (Qt-free).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from desktop.cli.engine_cmds import UsageError, add_load_flags, positive_int


def _plan(args: argparse.Namespace):
    from desktop.cli.lens_cmds import model_path
    from desktop.eval.plan import EvalError, EvalPlan

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    if not tasks:
        raise UsageError("--tasks needs at least one task name")
    sides = {}
    for side in ("base", "instruct"):
        given, endpoint = getattr(args, side), getattr(args, f"{side}_endpoint")
        if endpoint:
            sides[side] = given or ""  # the server's model id ("" = its only model)
        elif not given:
            raise UsageError(f"--{side} MODEL is needed (or --{side}-endpoint NAME|URL for a model on a server)")
        else:
            sides[side] = model_path(given)
            if not Path(sides[side]).is_file():
                raise EvalError(f"no model file at {sides[side]} (the --{side} model)")
    return EvalPlan(base=sides["base"], instruct=sides["instruct"], tasks=tasks, limit=args.limit,
                    num_fewshot=args.num_fewshot, include_path=args.include_path,
                    template=args.instruct_template, threads=args.threads, ctx=args.ctx,
                    gpu_layers=args.gpu_layers,
                    base_endpoint=args.base_endpoint, instruct_endpoint=args.instruct_endpoint)


def cmd_eval(args: argparse.Namespace) -> int:
    from desktop.eval.plan import default_out_dir

    plan = _plan(args)
    from desktop.eval.runner import prepare, run_all

    def say(text: str) -> None:
        sys.stderr.write(f"tandem: {text}\n")
        sys.stderr.flush()

    prepared = prepare(plan)  # lm-eval, YAML, task names, datasets, endpoints: all before any model loads
    if args.out:
        out_dir = Path(args.out).expanduser()
    else:
        from desktop.core.paths import data_dir

        out_dir = default_out_dir(plan, data_dir())
    say(f"output: {out_dir} (run the same command again to resume)")
    results = run_all(plan, out_dir, say, prepared=prepared)
    from desktop.eval.report import write_outputs

    summary = write_outputs(out_dir, plan, results)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print((out_dir / "report.md").read_text(encoding="utf-8"))
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="base vs instruct on lm-eval benchmarks (needs the eval extra)")
    p.add_argument("--base", default=None, metavar="MODEL",
                   help="the base model: a library name or GGUF file (with --base-endpoint: the server's model id)")
    p.add_argument("--instruct", default=None, metavar="MODEL", help="the instruct model (likewise)")
    p.add_argument("--tasks", required=True, metavar="T1,T2",
                   help="lm-eval task names, comma-separated (bundled: tandem_mc, tandem_short)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="at most N questions per task")
    p.add_argument("--num-fewshot", type=int, default=None, metavar="K", help="few-shot examples per question")
    p.add_argument("--include-path", default=None, metavar="DIR", help="a folder of your own lm-eval task YAML")
    p.add_argument("--instruct-template", choices=("both", "raw", "chat"), default="both",
                   help="run the instruct model raw, through its chat template, or both (default)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: a dated folder under the app's data folder)")
    p.add_argument("--base-endpoint", default=None, metavar="NAME|URL",
                   help="evaluate the base model on this server (one that scores text: vLLM, tandem serve)")
    p.add_argument("--instruct-endpoint", default=None, metavar="NAME|URL",
                   help="evaluate the instruct model on this server")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of the report")
    add_load_flags(p)
    p.set_defaults(func=cmd_eval)
