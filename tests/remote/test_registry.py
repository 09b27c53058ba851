"""The remote-engine registry is the one place an engine is named: every engine class is listed once, under
its own kind, and ``RemoteModel`` never asks which engine it talks to (a new engine = one class + one line)."""

from __future__ import annotations

import ast
import inspect

from desktop.engine import remote, remote_engines, remote_native
from desktop.engine.remote_engines import Dialect
from desktop.engine.remote_registry import ENGINES, dialect, label


def _dialect_classes() -> set[type]:
    return {obj for mod in (remote_engines, remote_native) for obj in vars(mod).values()
            if inspect.isclass(obj) and issubclass(obj, Dialect)}


def test_every_engine_class_is_registered_once_under_its_own_kind():
    assert set(ENGINES) == _dialect_classes()
    kinds = [e.kind for e in ENGINES]
    assert len(set(kinds)) == len(kinds)
    assert all(type(dialect(k)) is e and label(k) == e.label for k, e in zip(kinds, ENGINES))
    assert ENGINES[-1] is Dialect  # the catch-all OpenAI server is tried last


def test_remote_model_never_branches_on_an_engine_name():
    kinds = {e.kind for e in ENGINES}
    tree = ast.parse(inspect.getsource(remote))
    named = [(node.lineno, node.value) for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in kinds]
    assert named == []
