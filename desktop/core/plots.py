"""The reports' plots (the alignment lens's experiment, ``tandem eval``): matplotlib without a display, imported
only when a report draws, and one way to save a figure into the report's plots/ folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

NO_MATPLOTLIB = "No plots: matplotlib is not installed (`pip install matplotlib`)."


def plot_saver(plot_dir: Path) -> tuple[Any, Callable[[Any, str, str], None], dict[str, str]] | None:
    """(pyplot, save(fig, file name, title), {title: relative path} filled by save), or None without
    matplotlib. The folder is made here."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    plot_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}

    def save(fig, name: str, title: str) -> None:
        fig.tight_layout()
        fig.savefig(plot_dir / name, dpi=110)
        plt.close(fig)
        out[title] = f"plots/{name}"

    return plt, save, out
