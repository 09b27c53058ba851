"""Evaluation with lm-evaluation-harness: the project's own offline tasks (``tasks/``), for ``tandem eval``
and for anyone who runs ``lm_eval --include_path`` against ``tandem serve``.

lm-eval is an optional extra (``pip install "tandem-llm[eval]"``); nothing here imports it, so the package
can be imported (and its task folder found) without it.
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
TASK_NAMES = ("tandem_mc", "tandem_short")
