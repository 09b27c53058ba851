"""A token-shift experiment over a prompt set, resumable: one atomic record per finished prompt.

``DIR/settings.json`` fixes what the run measures (models' vocabularies, base context, sampling); each
finished prompt becomes ``DIR/records/NNNN.json``, written to a temporary file and renamed, so a run
killed at any moment leaves only whole records. Started again with the same settings, it skips every
prompt that has a record and continues with the rest; with other settings it refuses (the records would
mix two experiments). The report (``desktop.lens.report``) is rebuilt from the records at the end.
Qt-free: the CLI drives it now, Compare's "Run a prompt set…" later, both through ``progress``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from desktop.core import paths
from desktop.core.errors import ExperimentError, TandemError
from desktop.lens import analyze

BUILTIN_PROMPTS = "alignment-prompts.jsonl"


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    text: str
    kind: str = ""


def builtin_prompts_path() -> Path:
    """The prompt set shipped with Tandem (about 50 prompts across directive kinds)."""
    return paths.resources_dir() / "prompts" / BUILTIN_PROMPTS


def load_prompts(path: str | os.PathLike) -> list[Prompt]:
    """Prompts from a ``.jsonl`` file (one object per line with "prompt", optional "id" and "kind") or a
    ``.txt`` file (one prompt per line; blank lines and lines starting with '#' are skipped)."""
    p = Path(path).expanduser()
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentError(f"No prompt file at {p}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"Can't read the prompt file {p.name}: {getattr(exc, 'strerror', None) or exc}.") from None
    prompts: list[Prompt] = []
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise ExperimentError(f"{p.name} line {n} is not JSON.") from None
            text = obj.get("prompt", obj.get("text")) if isinstance(obj, dict) else obj if isinstance(obj, str) else None
            if not isinstance(text, str) or not text.strip():
                raise ExperimentError(f"{p.name} line {n} has no \"prompt\" text.")
            meta = obj if isinstance(obj, dict) else {}
            prompts.append(Prompt(str(meta.get("id") or len(prompts) + 1), text.strip(), str(meta.get("kind") or "")))
    elif suffix == ".txt":
        for line in raw.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                prompts.append(Prompt(str(len(prompts) + 1), line.strip()))
    else:
        raise ExperimentError(f"{p.name}: a prompt set is a .jsonl or a .txt file.")
    if not prompts:
        raise ExperimentError(f"{p.name} holds no prompts.")
    ids = [q.id for q in prompts]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ExperimentError(f"{p.name}: the prompt id {dup!r} appears twice.")
    return prompts


@dataclass(frozen=True, slots=True)
class Settings:
    """What an experiment measures; a resumed run must match it exactly."""

    base: str
    instruct: str
    vocab_id: str
    context: str  # "plain" | "urial" | "icl" | "chat" (the base model's own chat template)
    temperature: float
    seed: int
    max_tokens: int
    top_k: int
    system: str | None
    prompts_sha: str  # of the prompt texts in order

    def as_json(self) -> dict:
        return asdict(self)


def prompts_sha(prompts: list[Prompt]) -> str:
    h = hashlib.sha256()
    for q in prompts:
        h.update(json.dumps([q.id, q.text], ensure_ascii=False).encode("utf-8") + b"\n")
    return h.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    skipped: int  # records found from an earlier run
    eta_s: float | None  # None until one prompt has run in this session
    current: str  # id of the prompt now running, "" at the end


class Experiment:
    """An experiment folder. ``run`` does the prompts that have no record yet, then writes the report."""

    def __init__(self, out_dir: str | os.PathLike, settings: Settings, prompts: list[Prompt]):
        self.dir = Path(out_dir).expanduser()
        self.settings = settings
        self.prompts = prompts
        self.records_dir = self.dir / "records"
        self.failures: dict[str, str] = {}  # prompt id -> one-line reason, this session (retried on resume)

    def prepare(self) -> None:
        """Create the folder, or check that an existing one holds this same experiment."""
        settings_file = self.dir / "settings.json"
        try:
            self.records_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExperimentError(f"Can't create {self.dir}: {exc.strerror or exc}.") from None
        if settings_file.exists():
            try:
                old = json.loads(settings_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise ExperimentError(f"{settings_file} is unreadable; use another --out folder.") from None
            new = self.settings.as_json()
            # A moved model file is the same experiment when its vocabulary is, and a prompt set may grow or
            # shrink (records are matched by id and text); everything else must match.
            differ = [k for k in new if k not in ("base", "instruct", "prompts_sha") and old.get(k) != new[k]]
            if differ:
                raise ExperimentError(f"{self.dir} holds an experiment with other settings ({', '.join(differ)}); "
                                      "use another --out folder or the same settings to resume it.")
        _write_json_atomic(settings_file, self.settings.as_json())
        for stale in self.records_dir.glob(".*.tmp"):  # half-written by a run that was killed
            stale.unlink(missing_ok=True)

    def record_path(self, index: int) -> Path:
        return self.records_dir / f"{index:04d}.json"

    def done_indices(self) -> set[int]:
        return {i for i, q in enumerate(self.prompts) if self._matching_record(i) is not None}

    def _matching_record(self, index: int) -> dict | None:
        """The record of prompt ``index``, if one exists for this very prompt (id and text)."""
        q = self.prompts[index]
        rec = self.read_record(index)
        return rec if rec is not None and rec.get("id") == q.id and rec.get("prompt") == q.text else None

    def read_record(self, index: int) -> dict | None:
        try:
            return json.loads(self.record_path(index).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing, or a partial file from an older writer: the prompt runs again

    def records(self) -> list[dict]:
        return [r for r in (self._matching_record(i) for i in range(len(self.prompts))) if r is not None]

    def run(self, base, instruct, progress: Callable[[Progress], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Path:
        """Run every prompt without a record; returns the report's path (report.md). A part of a prompt
        that fails is named in its record (``analyze.run_prompt``); a prompt of which nothing could be done
        (too long for both models, say) is reported with its reason and left without a record, so a later
        run tries it again. ``should_stop`` is polled between tokens: a stopped run writes its report over what
        is done and leaves the rest for the next run."""
        from desktop.lens import report

        analyze.require_sibling(base, instruct)
        analyze.require_context(base, self.settings.context)
        self.prepare()
        done = self.done_indices()
        skipped = len(done)
        total = len(self.prompts)
        params = analyze.greedy(self.settings.max_tokens, self.settings.seed)
        if self.settings.temperature > 0:
            from dataclasses import replace

            params = replace(params, temperature=self.settings.temperature)
        ran, spent = 0, 0.0
        for i, q in enumerate(self.prompts):
            if i in done:
                continue
            if should_stop is not None and should_stop():
                break
            if progress is not None:
                eta = spent / ran * (total - len(done)) if ran else None
                progress(Progress(len(done), total, skipped, eta, q.id))
            t0 = time.monotonic()
            try:
                record = analyze.run_prompt(base, instruct, q.text, context=self.settings.context, params=params,
                                            top_k=self.settings.top_k, system=self.settings.system,
                                            should_stop=should_stop)
            except TandemError as exc:  # e.g. a prompt too long for the context: the others still run
                if should_stop is not None and should_stop():
                    break  # stopped mid-prompt: no record, the next run does this prompt
                self.failures[q.id] = str(exc)
                continue
            record = {"index": i, "id": q.id, "kind": q.kind, "prompt": q.text, **record}
            _write_json_atomic(self.record_path(i), record)
            done.add(i)
            ran += 1
            spent += time.monotonic() - t0
        if progress is not None:
            progress(Progress(len(done), total, skipped, 0.0, ""))
        return report.write_report(self.dir, self.settings.as_json(), self.prompts, self.records(), self.failures)


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
