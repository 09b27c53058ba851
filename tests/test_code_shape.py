"""The size limits of issue 13: no module over 400 lines and no constructor (``__init__``) over 60 lines in
``desktop/``, so that a file stays one responsibility and a widget's constructor stays a list of builders.

The exceptions are explicit and are ceilings: such a file may shrink (and should leave the list when it is
under the limit), but not grow. A new file over the limit fails here with where to split it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESKTOP = ROOT / "desktop"
MAX_MODULE_LINES = 400
MAX_INIT_LINES = 60

# path (relative to the repository) -> the most lines it may have. Each one with the reason it is here.
MODULE_EXCEPTIONS: dict[str, int] = {}
# "path:ClassName" -> the most lines its __init__ may have.
INIT_EXCEPTIONS: dict[str, int] = {}


def _modules() -> list[Path]:
    return sorted(p for p in DESKTOP.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_no_module_is_over_the_line_limit():
    over = []
    for path in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        limit = MODULE_EXCEPTIONS.get(_rel(path), MAX_MODULE_LINES)
        if lines > limit:
            over.append(f"{_rel(path)}: {lines} lines (limit {limit})")
    assert not over, "split these by responsibility (see docs/ARCHITECTURE.md):\n" + "\n".join(over)


def test_no_constructor_is_over_the_line_limit():
    over = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
                    lines = fn.end_lineno - fn.lineno + 1
                    key = f"{_rel(path)}:{cls.name}"
                    limit = INIT_EXCEPTIONS.get(key, MAX_INIT_LINES)
                    if lines > limit:
                        over.append(f"{key}.__init__: {lines} lines (limit {limit})")
    assert not over, "move the construction into builder methods (widgets: one per part of the layout):\n" + "\n".join(over)


def test_the_exceptions_name_real_files():
    """A renamed or removed file must leave the exception lists (else they silently allow a new one)."""
    missing = [p for p in MODULE_EXCEPTIONS if not (ROOT / p).is_file()]
    missing += [k for k in INIT_EXCEPTIONS if not (ROOT / k.split(":")[0]).is_file()]
    assert not missing, missing
