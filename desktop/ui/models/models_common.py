"""What the Models page's parts share: this machine's free memory, one-line error texts, small formatters.

Free memory comes from two places: RAM from ``desktop.core.sysmem`` (a file read, cheap) and VRAM from the
engine's ``hardware_report()`` (a short-lived worker process that asks llama.cpp for its devices). Both are
read off the GUI thread; the page shows RAM-only verdicts first and refines them when the report arrives.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from desktop.core.errors import (
    ChecksumMismatch,
    DiskFullError,
    GatedRepoError,
    OfflineError,
    RepoNotFound,
    TandemError,
)
from desktop.core.fit import FITS, TIGHT, WONT_FIT, human_bytes
from desktop.core.settings import Settings

KIND_STYLE = {  # the same colours as the panes' model bar badges
    "base": ("#2e7d5b", "white"),
    "instruct": ("#3d5fb8", "white"),
    "broken": ("#c0392b", "white"),
    "unknown": ("#777777", "white"),
}
FIT_STYLE = {FITS: ("#2e7d5b", "white"), TIGHT: ("#c98a00", "white"), WONT_FIT: ("#c0392b", "white")}
ERROR_COLOR = "#c0392b"

BASE_VS_INSTRUCT = (
    "<b>Base</b> models were trained only to predict the next word of huge amounts of text: they "
    "<i>continue</i> whatever you write. <b>Instruct</b> models are the same base model fine-tuned on "
    "instruction → answer examples: they <i>answer</i> your request, in the format you ask. Tandem works "
    "with a <b>pair</b> — one of each from the same family and size — so you can see the difference side "
    "by side."
)

_TRUE = {"1", "true", "yes", "on"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MachineMemory:
    """Free memory for the fit estimate. ``free_vram`` counts only when models may use the GPU."""

    free_ram: int | None
    free_vram: int | None = None
    total_ram: int | None = None
    backend: str = ""  # "CPU", "CUDA", "Metal", "Vulkan" once the hardware report is in; "" before
    gpu_names: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.free_ram is None:
            return "Free memory could not be read on this machine; fit estimates are rough."
        text = f"{human_bytes(self.free_ram)} RAM free"
        if self.total_ram:
            text += f" of {human_bytes(self.total_ram)}"
        if self.free_vram:
            gpus = ", ".join(self.gpu_names) or "GPU"
            text += f" · {human_bytes(self.free_vram)} VRAM free ({gpus})"
        elif self.backend:
            text += f" · no GPU offload ({self.backend} build)" if self.backend == "CPU" else ""
        return text


def read_free_ram() -> MachineMemory:
    """RAM only: cheap, for the first verdicts while the hardware report is still running."""
    from desktop.core.sysmem import memory_info

    info = memory_info()
    return MachineMemory(info.available, None, info.total)


def read_machine_memory(gpu_layers: str = "auto") -> MachineMemory:
    """RAM and, when the llama.cpp build offloads and GPU layers are not 0, the GPUs' free VRAM. Blocks."""
    from desktop.engine.backends import hardware

    ram = read_free_ram()
    try:
        report = hardware()
    except Exception as exc:  # noqa: BLE001 - no report (a broken llama.cpp build): RAM alone still gives a verdict
        log.warning("no hardware report, fit verdicts use RAM only: %s", exc)
        return ram
    vram = None
    if report.gpus and report.gpu_offload_supported and str(gpu_layers).strip() != "0":
        vram = sum(g.memory_free for g in report.gpus) or None
    names = tuple(g.description or g.name or "GPU" for g in report.gpus)
    return MachineMemory(ram.free_ram, vram, ram.total_ram, report.build_backend, names)


def offline_reason(settings: Settings) -> str | None:
    """Why nothing may go to Hugging Face right now, or None when online."""
    if settings.offline:
        return ("Offline mode is on (Settings), so searching and downloading are turned off. "
                "Models already on disk still work.")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return ("HF_HUB_OFFLINE is set in the environment, so searching and downloading are turned off. "
                "Models already on disk still work.")
    return None


def error_text(exc: BaseException) -> str:
    """One line for a person: our errors carry their own message; anything else is named, never dumped."""
    if isinstance(exc, TandemError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    else:
        text = f"Unexpected error ({type(exc).__name__}: {exc})."
    return " ".join(text.split())  # no tracebacks, no line breaks


def error_kind(exc: BaseException | None) -> str:
    """A short tag the page uses to offer the right next step (e.g. the token field for a gated repo)."""
    for cls, tag in ((GatedRepoError, "gated"), (OfflineError, "offline"), (RepoNotFound, "not-found"),
                     (DiskFullError, "disk-full"), (ChecksumMismatch, "checksum")):
        if isinstance(exc, cls):
            return tag
    return "other"


def badge_css(background: str, foreground: str = "white") -> str:
    return (f"background:{background}; color:{foreground}; border-radius:4px; padding:1px 6px; "
            "font-weight:600;")


def format_params(n: int | None) -> str:
    """135M / 1.5B parameters."""
    if not n:
        return "—"
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return f"{n / 1e3:.0f}K"


def format_count(n: int) -> str:
    """1,234 / 12.3k / 4.5M — for downloads and likes."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0 or seconds != seconds:
        return ""
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s left"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s left"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min left"


def format_ctx(n: int | None) -> str:
    if not n:
        return "—"
    return f"{n // 1024}k" if n % 1024 == 0 else f"{n:,}"


def badge_cell(text: str, style: tuple[str, str] | None, tooltip: str = "", name: str = "fitVerdict"):
    """A small coloured badge centred vertically in a table cell (a QLabel named ``name`` inside a holder)."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(4, 0, 4, 0)
    label = QLabel(text)
    label.setObjectName(name)
    label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    if style:
        label.setStyleSheet(badge_css(*style))
    label.setToolTip(tooltip)
    layout.addWidget(label, 0, Qt.AlignmentFlag.AlignVCenter)
    layout.addStretch(1)
    return holder
