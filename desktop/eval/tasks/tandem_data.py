"""The loader the task YAMLs name (``custom_dataset: !function tandem_data.load``).

Each YAML says ``dataset_path: json`` and names its questions in ``dataset_kwargs.data_files`` relative to
the YAML. lm-eval hands ``data_files`` to ``datasets.load_dataset`` unchanged, and ``datasets`` resolves a
relative path against the current directory, so the task would load only when lm-eval is started from
this folder. This loader resolves the names against its own folder (the YAMLs' folder) first; otherwise it
does exactly what lm-eval would. lm-eval loads this file by path, so it imports nothing from ``desktop``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _resolve(files: Any) -> Any:
    if isinstance(files, str):
        return files if Path(files).is_absolute() else str(HERE / files)
    if isinstance(files, list | tuple):
        return [_resolve(f) for f in files]
    if isinstance(files, dict):
        return {split: _resolve(f) for split, f in files.items()}
    return files


def load(data_files: Any = None, **_metadata: Any):
    """lm-eval calls this with the task's metadata and ``dataset_kwargs`` as keywords."""
    import datasets

    return datasets.load_dataset("json", data_files=_resolve(data_files))
