"""The bundle's entry point: ``tandem`` (and ``tandemw.exe`` on Windows) start here.

``multiprocessing.freeze_support()`` must run first: engine workers use the "spawn" start method, which
in a frozen app starts this same executable again with multiprocessing's own arguments; the call turns
that child into the worker and never returns there. In the parent it does nothing.
"""

from __future__ import annotations

import multiprocessing


def _main() -> int:
    multiprocessing.freeze_support()
    from desktop.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(_main())
