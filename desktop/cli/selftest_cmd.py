"""`tandem selftest`: check an install end to end (engine workers, templates, metadata, main window)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "selftest",
        help="check that this install works (tiny model, worker process, chat template, window)",
        description="Write a tiny random model to a temporary folder, load it in a worker process, stream a "
                    "completion and a templated chat, read its metadata and open the main window "
                    "(offscreen without a display). Exits 0 only if every check passed.",
    )
    p.add_argument("--no-gui", action="store_true", help="skip the main-window check (machines without Qt's "
                                                          "system libraries)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from desktop.selftest import describe_install, format_result, run_selftest

    def report(result) -> None:
        if not args.json:
            print(format_result(result), flush=True)

    if not args.json:
        print(describe_install(), flush=True)
    outcome = run_selftest(gui=not args.no_gui, report=report)
    results = outcome.results
    total = sum(r.seconds for r in results)
    kept = str(outcome.kept_folder) if outcome.kept_folder else None
    if args.json:
        json.dump({"ok": outcome.ok, "install": describe_install(), "seconds": round(total, 3),
                   "checks": [r.as_json() for r in results], "kept_folder": kept}, sys.stdout,
                  ensure_ascii=False)
        sys.stdout.write("\n")
    elif outcome.ok:
        print(f"All {sum(r.status == 'ok' for r in results)} checks passed in {total:.1f} s.")
    else:
        failed = [r.name for r in results if r.status == "FAIL"]
        print(f"selftest FAILED ({len(failed)} of {len(results)} checks): {', '.join(failed)}")
        print(f"Logs and the test models are kept in {kept}")
    return 0 if outcome.ok else 1
