"""What ``tandem eval`` will run, checked before anything loads: lm-eval present, task names known, the
include folders' YAML readable. Importing this module imports no lm-eval; the checks import it when called.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from desktop.core.errors import TandemError
from desktop.eval import TASKS_DIR

INSTALL_HINT = 'pip install "tandem-llm[eval]"'
TEMPLATES = ("both", "raw", "chat")


class EvalError(TandemError):
    """An evaluation can't start or go on: lm-eval missing, an unknown task, a broken task YAML."""


@dataclass(frozen=True)
class Run:
    """One lm-eval run: which model (``base`` or ``instruct``) and whether its chat template is applied."""

    name: str  # "base", "instruct-raw", "instruct-chat"
    model: str  # "base" or "instruct"
    chat: bool = False


@dataclass(frozen=True)
class EvalPlan:
    base: str  # a GGUF path, or with base_endpoint the server's model id
    instruct: str
    tasks: tuple[str, ...]
    limit: int | None = None
    num_fewshot: int | None = None
    include_path: str | None = None
    template: str = "both"
    threads: int | None = None
    ctx: int | None = None
    gpu_layers: int | str = "auto"
    base_endpoint: str | None = None
    instruct_endpoint: str | None = None
    extra: dict = field(default_factory=dict)

    def runs(self) -> list[Run]:
        runs = [Run("base", "base")]
        if self.template in ("both", "raw"):
            runs.append(Run("instruct-raw", "instruct"))
        if self.template in ("both", "chat"):
            runs.append(Run("instruct-chat", "instruct", chat=True))
        return runs

    def key(self) -> str:
        """Short hash of what decides the answers: the same command gets the same key (and so resumes)."""
        d = asdict(self)
        d.pop("threads"), d.pop("extra"), d.pop("gpu_layers")
        for side in ("base", "instruct"):
            p = Path(d[side])
            if p.is_file():
                d[side] = [str(p.resolve()), p.stat().st_size]
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]

    def include_paths(self) -> list[str]:
        return [str(TASKS_DIR)] + ([self.include_path] if self.include_path else [])


def require_lm_eval() -> None:
    """One line saying what to install, without importing lm-eval."""
    for module in ("lm_eval", "aiohttp", "tenacity", "sqlitedict"):
        if importlib.util.find_spec(module) is None:
            raise EvalError(f"evaluation needs lm-eval, which is not installed: {INSTALL_HINT}")


def default_out_dir(plan: EvalPlan, data_dir: Path) -> Path:
    """A dated folder under the app's data dir; an earlier folder for the same command is reused, so
    running the command again resumes it."""
    root = data_dir / "eval"
    key = plan.key()
    earlier = sorted(root.glob(f"*-{key}")) if root.is_dir() else []
    if earlier:
        return earlier[-1]
    return root / f"{_dt.datetime.now():%Y-%m-%d-%H%M%S}-{key}"


def check_include_path(path: str | None) -> None:
    """lm-eval skips a YAML it can't read without a word (and then calls the task unknown): say which."""
    if not path:
        return
    root = Path(path).expanduser()
    if not root.is_dir():
        raise EvalError(f"--include-path {path}: no such folder")
    from lm_eval.tasks._yaml_loader import load_yaml

    for yaml_path in sorted(root.rglob("*.yaml")):
        try:
            cfg = load_yaml(yaml_path, resolve_func=False, recursive=True)
        except Exception as exc:  # yaml's errors span lines; the first says where
            first = " ".join(str(exc).split())[:200]
            raise EvalError(f"can't read the task file {yaml_path}: {first}") from None
        if not isinstance(cfg, dict):
            raise EvalError(f"can't read the task file {yaml_path}: not a mapping of task settings")


def task_manager(plan: EvalPlan):
    """lm-eval's TaskManager for these tasks. Indexing all of lm-eval's ~15k task files takes most of a
    minute on a small machine, so the bundled and included folders are tried alone first."""
    from lm_eval.tasks import TaskManager

    local = TaskManager(include_path=plan.include_paths(), include_defaults=False)
    if all(name in local.all_tasks for name in plan.tasks):
        return local
    full = TaskManager(include_path=plan.include_paths())
    unknown = [name for name in plan.tasks if name not in full.all_tasks]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, full.all_tasks, n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(close)}" if close else "; `lm_eval ls tasks` lists them"
        raise EvalError(f"unknown task {name!r}{hint}")
    return full


def check_datasets(plan: EvalPlan, manager) -> None:
    """Load each task (and so its dataset) before any model loads: a dataset that can't be had offline
    is named with its task and the reason."""
    for name in plan.tasks:
        try:
            manager.load([name])
        except Exception as exc:
            reason = " ".join(str(exc).split())[:240] or type(exc).__name__
            raise EvalError(f"task {name}: its dataset can't be loaded ({reason})") from None
