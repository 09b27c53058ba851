"""Import rules the import-linter contracts can't say: llama_cpp is imported in exactly one module,
desktop/engine/native.py (the worker's modules reach it through ``native``), as docs/ARCHITECTURE.md says."""

from __future__ import annotations

import ast
from pathlib import Path

DESKTOP = Path(__file__).resolve().parents[1] / "desktop"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_only_engine_native_imports_llama_cpp():
    importers = sorted(str(p.relative_to(DESKTOP)) for p in DESKTOP.rglob("*.py")
                       if any(n == "llama_cpp" or n.startswith("llama_cpp.") for n in _imports(p)))
    assert importers == ["engine/native.py"]

