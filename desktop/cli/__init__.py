"""The ``tandem`` command: a stable contract for people and scripts.

``tandem`` with no arguments starts the desktop app. Every sub-command reports a problem as one line,
``tandem: error: <what happened and what to do>``, on stderr and exits 1 (usage errors exit 2); a
traceback only ever goes to the log file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from desktop.core.errors import TandemError

# Each module registers its sub-commands: register(subparsers) -> None. Handlers are set with
# parser.set_defaults(func=handler); a handler takes the parsed args and returns an exit code.
_COMMAND_MODULES = (
    "desktop.cli.engine_cmds",
    "desktop.cli.models_cmds",
    "desktop.cli.compare_cmds",
    "desktop.cli.selftest_cmd",
    "desktop.cli.bench_cmd",
    "desktop.cli.lens_cmds",
    "desktop.cli.endpoint_cmds",
    "desktop.cli.serve_cmd",
    "desktop.cli.eval_cmd",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as argparse does, but in our voice
        self.print_usage(sys.stderr)
        sys.stderr.write(f"tandem: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="tandem", description="Run base and instruct GGUF models side by side.")
    from desktop import __version__

    parser.add_argument("--version", action="version", version=f"tandem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMAND_MODULES:  # a misspelt or missing module fails here, loudly (tests/test_cli_commands.py)
        importlib.import_module(name).register(sub)
    return parser


def fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"tandem: error: {message}\n")
    sys.stderr.flush()
    return code


def run_handler(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return int(handler(args) or 0)
    except TandemError as exc:
        return fail(str(exc), getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        sys.stderr.write("tandem: interrupted\n")
        return 130
    except BrokenPipeError:  # `tandem ... | head`
        return 0
    except Exception as exc:  # a bug of ours: one line here, the traceback in the log
        from desktop.core.logs import log_exception

        where = log_exception("unexpected error in the command line")
        return fail(f"internal error ({type(exc).__name__}: {exc}); details in {where}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        from desktop.app import main as gui_main

        return gui_main()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_handler(args.func, args)
