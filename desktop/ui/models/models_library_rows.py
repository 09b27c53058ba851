"""What the library view shows of one model: its row in the tree (name, kind, pair, size, ...) and its
details panel (an HTML table, with what to do about a broken file).

Split from ``models_library`` (the view, its scans, import and remove): these are pure functions of a
``LibraryEntry``, kept apart so the view's class stays about behaviour.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QTreeWidgetItem

from desktop.core.fit import human_bytes
from desktop.ui.models.models_common import ERROR_COLOR, format_ctx, format_params

KIND_TIPS = {
    "base": "A base model continues text: use it in Completion (and as the left side of Compare).",
    "instruct": "An instruct model answers requests: use it in Chat (and as the right side of Compare).",
}
SOURCE_NAMES = {"library": "models folder", "hf-cache": "Hugging Face cache", "lmstudio": "LM Studio's folder"}


def entry_item(e, by_path: dict) -> QTreeWidgetItem:
    """The tree row of one LibraryEntry (``by_path``: every entry by its path, to name the pair)."""
    if e.broken:
        item = QTreeWidgetItem([f"⚠  {e.path.name} — {e.broken}"])
        item.setForeground(0, QBrush(QColor(ERROR_COLOR)))
        item.setToolTip(0, f"{e.path}\n{e.broken}")
    else:
        meta = e.metadata
        pair = by_path.get(e.pair) if e.pair else None
        item = QTreeWidgetItem([
            "   " + e.path.name + ("  (linked)" if e.linked else ""),
            e.kind or "unknown",
            f"↔ {pair.path.name}" if pair else "no sibling yet",
            format_params(meta.parameters if meta else None),
            e.quant or "—",
            format_ctx(meta.context_length if meta else None),
            human_bytes(e.file_size),
            meta.architecture if meta else "—",
        ])
        item.setToolTip(0, str(e.path))
        item.setForeground(1, QBrush(QColor(0, 0, 0, 0)))  # the badge widget shows it; text stays for search
        if not pair:
            item.setForeground(2, QBrush(QColor("#888888")))
            other = "instruct" if e.kind == "base" else "base"
            item.setToolTip(2, f"The {other} sibling of this model is not in the library; Compare needs both.")
    item.setData(0, Qt.ItemDataRole.UserRole, str(e.path))
    return item


def details_html(e, entries: list) -> str:
    """The details panel of one LibraryEntry, as an HTML table (``entries``: the list it is in)."""
    rows: list[tuple[str, str]] = [("File", escape(str(e.path)))]
    if e.broken:
        rows.append(("Problem", f"<span style='color:{ERROR_COLOR}'>{escape(e.broken)}</span>"))
        rows.append(("What to do", "Remove it, or download it again; Tandem will not try to load it."))
    else:
        meta = e.metadata
        kind_text = {"base": "base: continues text (use it in Completion)",
                     "instruct": "instruct: answers requests (use it in Chat)"}.get(e.kind or "", e.kind or "?")
        pair = next((p for p in entries if p.path == e.pair), None) if e.pair else None
        rows += [
            ("Kind", kind_text + (" — it has a chat template" if meta and meta.has_chat_template else "")),
            ("Pair", escape(pair.path.name) + " — ready for Compare" if pair else "its sibling is not in the "
             "library yet"),
            ("Model", escape(meta.name or e.name) if meta else escape(e.name)),
            ("Architecture", escape(meta.architecture) if meta else "—"),
            ("Parameters", f"{format_params(meta.parameters)} ({meta.parameters:,})" if meta and meta.parameters
             else "—"),
            ("Quantization", escape(e.quant or "—")),
            ("Trained context", f"{meta.context_length:,} tokens" if meta and meta.context_length else "unknown"),
            ("Size", human_bytes(e.file_size)),
        ]
        if e.repo:
            rows.append(("From", escape(e.repo)))
    where = SOURCE_NAMES.get(e.source, e.source) + (" (linked: the file stays where it is)" if e.linked else "")
    rows.append(("Location", where))
    cells = "".join(f"<tr><td style='padding-right:12px; color:palette(placeholder-text)'>{k}</td>"
                    f"<td>{v}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"
