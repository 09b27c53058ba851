"""The shape rules of issue 21 for the window's code, checked on the source with ``ast``.

No mixins that lean on their host: every attribute a class in ``desktop/ui`` reads on ``self`` must be
defined by that class or by one of its bases. "Defined" means one of:

- assigned on ``self`` (``self.x = …``, ``self.x: T = …``, ``self.x += …``, a tuple target) in a method of
  the class or of a base class defined in ``desktop/``;
- named in the body of the class or of such a base (a method, a property, a class attribute, a Signal, an
  annotation);
- an attribute of a base class from outside ``desktop/`` (Qt's QWidget, QObject, …: ``hasattr`` on the
  imported class).

A class that reads ``self.notice`` while only the pane it is mixed into creates it breaks the rule: the
attribute belongs in the constructor's parameters (a controller), not in a host's ``__dict__``.

And the Compare details tabs come from one registry: no module but ``desktop/ui/compare/tabs.py`` gives a
tab's index, so adding a tab stays one module plus one line.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESKTOP = ROOT / "desktop"
UI = DESKTOP / "ui"


def _module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


class _Index:
    """Every class in the packages under ``roots`` (desktop/), with what its module imports, to resolve a base
    class by name."""

    def __init__(self, packages: list[Path]) -> None:
        self.classes: dict[tuple[str, str], ast.ClassDef] = {}
        self.imports: dict[str, dict[str, tuple[str, str]]] = {}  # module -> local name -> (module, name)
        for path in sorted(p for package in packages for p in package.rglob("*.py")):
            module = _module_name(path, next(p.parent for p in packages if p in path.parents))
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names: dict[str, tuple[str, str]] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self.classes[(module, node.name)] = node
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    for alias in node.names:
                        names[alias.asname or alias.name] = (node.module, alias.name)
            self.imports[module] = names

    def resolve(self, module: str, base: ast.expr) -> tuple[str, str] | None:
        """(module, class name) of a base given by a bare name; None for anything else (Generic[…], …)."""
        if not isinstance(base, ast.Name):
            return None
        if (module, base.id) in self.classes:
            return module, base.id
        return self.imports[module].get(base.id)


def _self_reads(cls: ast.ClassDef) -> set[str]:
    reads = set()
    for fn in cls.body:
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "self" and isinstance(node.ctx, ast.Load)):
                    reads.add(node.attr)
    return reads


def _own_definitions(cls: ast.ClassDef) -> set[str]:
    defined = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    for node in ast.walk(cls):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        while targets:
            target = targets.pop()
            if isinstance(target, (ast.Tuple, ast.List)):
                targets.extend(target.elts)
            elif isinstance(target, ast.Starred):
                targets.append(target.value)
            elif (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                  and target.value.id == "self"):
                defined.add(target.attr)
    return defined


def _defined(index: _Index, module: str, cls: ast.ClassDef) -> tuple[set[str], list[type]]:
    """What the class and its desktop bases define, and the outside classes among its bases."""
    defined, outside = _own_definitions(cls), []
    for base in cls.bases:
        where = index.resolve(module, base)
        if where is None:
            continue
        if where in index.classes:
            more, more_outside = _defined(index, where[0], index.classes[where])
            defined |= more
            outside += more_outside
        else:
            outside.append(getattr(importlib.import_module(where[0]), where[1]))
    return defined, outside


def undefined_self_attributes(packages: list[Path] | None = None, under: str = "desktop.ui.") -> dict[str, list[str]]:
    """Classes of the modules whose name starts with ``under`` -> the attributes they read but don't define."""
    index = _Index(packages or [DESKTOP])
    found = {}
    for (module, name), cls in index.classes.items():
        if not module.startswith(under):
            continue
        defined, outside = _defined(index, module, cls)
        missing = sorted(a for a in _self_reads(cls) - defined
                         if not any(hasattr(base, a) for base in outside) and not hasattr(object, a))
        if missing:
            found[f"{module}.{name}"] = missing
    return found


def test_no_class_in_the_ui_uses_attributes_it_does_not_define():
    found = undefined_self_attributes()
    assert not found, ("these classes read attributes on self that neither they nor their bases define "
                       "(mixins of a host): pass what they need to the constructor instead\n"
                       + "\n".join(f"{k}: {', '.join(v)}" for k, v in sorted(found.items())))


def test_the_rule_catches_a_mixin(tmp_path):
    """The check itself: a class that reads what only its host defines is found; one that defines it, or
    inherits it from Qt or from a base of its own, is not."""
    package = tmp_path / "probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("class Base:\n    def __init__(self):\n        self.notice = None\n")
    (package / "probe.py").write_text(
        "from PySide6.QtWidgets import QWidget\n\nfrom probe.base import Base\n\n\n"
        "class Mixin:\n    def f(self):\n        return self.notice, self.run()\n\n\n"
        "class Child(Base):\n    def f(self):\n        return self.notice\n\n\n"
        "class Widget(QWidget):\n    def f(self):\n        self.own, _ = 1, 2\n        return self.own, self.isVisible()\n")
    found = undefined_self_attributes([package], under="probe.")
    assert found == {"probe.probe.Mixin": ["notice", "run"]}


def compare_tab_index_offenders(tab_keys: set[str]) -> list[str]:
    """Places in ui/compare, outside tabs.py, that give a tab's position themselves: a number passed to
    setCurrentIndex/widget/insertTab, a currentIndex() compared with a number, or a list of tab keys."""
    offenders = []
    for path in sorted((UI / "compare").glob("*.py")):
        if path.name == "tabs.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List)):
                named = {e.value for e in node.elts if isinstance(e, ast.Constant)} & tab_keys
                if len(named) >= 2:
                    offenders.append(f"{path.name}:{node.lineno}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("setCurrentIndex", "widget", "setTabVisible", "insertTab")
                    and any(isinstance(a, ast.Constant) for a in node.args)):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and isinstance(c.value, int)
                                                     for c in node.comparators) and "currentIndex" in ast.dump(node.left):
                offenders.append(f"{path.name}:{node.lineno}")
    return offenders


def test_compare_tab_indices_come_from_the_registry_only():
    """``tabs.index()`` is the one source of a details tab's position (the recipe for a new tab stays one
    module plus one line in ``tabs.TABS``)."""
    from desktop.ui.compare import tabs

    offenders = compare_tab_index_offenders(set(tabs.keys()))
    assert not offenders, offenders


def test_the_tab_registry_builds_every_tab_in_order(qtbot):
    from desktop.ui.compare import tabs
    from desktop.ui.compare.compare_layout import CompareWidgets  # noqa: F401 - imports cleanly

    keys = tabs.keys()
    assert len(set(keys)) == len(keys) == len(tabs.TABS)
    assert [tabs.index(k) for k in keys] == list(range(len(keys)))
