"""`tandem catalog` and `tandem models list|search|files|download|info|import|remove`.

Tables for people, ``--json`` for scripts. A download prints its progress on stderr and the final path as
the last line of stdout; Ctrl-C pauses it (the ``.part`` file stays) and running the same command again
resumes from where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from desktop.core.fit import human_bytes


def register(subparsers: argparse._SubParsersAction) -> None:
    cat = subparsers.add_parser("catalog", help="base/instruct pairs Tandem can download",
                                description="List the catalog of base/instruct pairs, with a fit estimate "
                                            "for this machine.")
    cat.add_argument("--json", action="store_true", help="print JSON")
    cat.set_defaults(func=cmd_catalog)

    models = subparsers.add_parser("models", help="the local model library and Hugging Face downloads",
                                   description="Manage local GGUF models and download new ones.")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=type(models))

    p = sub.add_parser("list", help="models in the library (and found in the HF cache / LM Studio)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("search", help="search Hugging Face for GGUF repositories")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=20, help="how many results (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("files", help="the GGUF files of a Hugging Face repository")
    p.add_argument("repo", help="owner/name")
    p.add_argument("--json", action="store_true", help="print JSON: [{name, size, quant}]")
    p.set_defaults(func=cmd_files)

    p = sub.add_parser("download", help="download a GGUF file (resumable; Ctrl-C pauses)")
    p.add_argument("repo", help="owner/name")
    p.add_argument("file", help="file name in the repository (the first part, for a split model)")
    p.add_argument("--dir", default=None, help="destination folder (default: the models folder)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("info", help="metadata of a GGUF file")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("import", help="add local GGUF files to the library",
                       description="Copy GGUF files into the models folder (or, with --link, list them where "
                                   "they are). Every file is checked first: if one is missing or broken, "
                                   "nothing is imported. A file already in the library is left as it is.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--link", action="store_true", help="list them where they are instead of copying them")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("remove", help="remove a model (with its partial download and metadata)")
    p.add_argument("name", help="a name from `tandem models list`, or a path")
    p.set_defaults(func=cmd_remove)

    models.set_defaults(func=lambda args: _help(models))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        sys.stdout.write("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")


def _library():
    from desktop.core.library import Library

    return Library()


# --- catalog ------------------------------------------------------------------------------------------------


def cmd_catalog(args: argparse.Namespace) -> int:
    from desktop.core.catalog import load_catalog
    from desktop.core.sysmem import free_ram

    catalog = load_catalog()
    free = free_ram()
    if args.json:
        out = []
        for fam in catalog.families:
            fit = fam.pair_fit(free)
            out.append({**fam.to_json(), "pair_fit": {"verdict": fit.verdict, "needed_bytes": fit.needed_bytes,
                                                      "explanation": fit.explanation}})
        _print_json(out)
        return 0
    rows = []
    for fam in catalog.families:
        b, i = fam.base.file_for(), fam.instruct.file_for()
        rows.append([fam.id, fam.title, fam.base.default_quant, human_bytes(b.size + i.size),
                     f"{fam.context_length:,}", fam.license, fam.pair_fit(free).verdict,
                     f"{fam.base.repo} + {fam.instruct.repo}"])
    _table(rows, ["ID", "MODEL", "QUANT", "PAIR SIZE", "CONTEXT", "LICENCE", "FIT", "REPOS"])
    best = catalog.smallest_pair_that_fits(free)
    if best is not None:
        sys.stdout.write(f"\nSmallest pair that fits this machine: {best.id}\n")
    return 0


# --- library ------------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    entries = _library().scan()
    if args.json:
        _print_json([e.to_json() for e in entries])
        return 0
    if not entries:
        lib = _library()
        sys.stdout.write(f"No models yet in {lib.models_dir}. Try `tandem catalog` and "
                         "`tandem models download REPO FILE`.\n")
        return 0
    rows = []
    for e in entries:
        if e.broken:
            rows.append([e.name, "broken", "", human_bytes(e.file_size), e.source, e.broken])
            continue
        pair = e.pair.name if e.pair else ""
        rows.append([e.name, e.kind or "", e.quant or "", human_bytes(e.file_size), e.source,
                     f"pair: {pair}" if pair else ""])
    _table(rows, ["NAME", "KIND", "QUANT", "SIZE", "SOURCE", "NOTE"])
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from desktop.core.gguf_meta import read_metadata

    meta = read_metadata(Path(args.path).expanduser())
    if args.json:
        _print_json(meta.to_json())
        return 0
    lines = [
        ("name", meta.name), ("architecture", meta.architecture), ("kind", meta.kind),
        ("parameters", f"{meta.parameters:,}"), ("quantization", meta.quantization),
        ("context length", f"{meta.context_length:,}" if meta.context_length else "unknown"),
        ("chat template", "yes" if meta.has_chat_template else "no"),
        ("layers / width / heads", f"{meta.n_layer} / {meta.n_embd} / {meta.n_head} (KV {meta.n_head_kv})"),
        ("vocabulary", f"{meta.vocab_size:,}" if meta.vocab_size else "unknown"),
        ("file size", f"{human_bytes(meta.file_size)} ({meta.file_size:,} bytes)"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        sys.stdout.write(f"{key.ljust(width)}  {value}\n")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    library = _library()
    for path in args.paths:  # all or nothing: a typo in the second path must not leave half an import
        library.check_importable(path)
    for path in args.paths:
        already = not args.link and (library.models_dir / Path(path).name).exists()
        entry = library.import_file(path, link=args.link)
        how = "already in the library:" if already else "linked" if args.link else "copied"
        sys.stderr.write(f"{how} {entry.name} ({entry.kind}, {entry.quant})\n")
        sys.stdout.write(f"{entry.path}\n")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    removed = _library().remove(args.name)
    if removed:
        for path in removed:
            sys.stdout.write(f"removed {path}\n")
    else:
        sys.stdout.write(f"unlisted {args.name} (its file was linked, not copied, and is left in place)\n")
    return 0


# --- hub ----------------------------------------------------------------------------------------------------


def cmd_search(args: argparse.Namespace) -> int:
    from desktop.hub.search import search_models

    results = search_models(args.query, limit=args.limit)
    if args.json:
        _print_json([r.to_json() for r in results])
        return 0
    if not results:
        sys.stdout.write(f"No GGUF repositories match {args.query!r}.\n")
        return 0
    _table([[r.id, f"{r.downloads:,}", f"{r.likes:,}", "gated" if r.gated else "", r.last_modified or ""]
            for r in results], ["REPO", "DOWNLOADS", "LIKES", "ACCESS", "UPDATED"])
    return 0


def cmd_files(args: argparse.Namespace) -> int:
    from desktop.hub.files import list_gguf_files

    files = list_gguf_files(args.repo)
    if args.json:
        _print_json([{"name": f.name, "size": f.size, "quant": f.quant} for f in files])
        return 0
    if not files:
        sys.stdout.write(f"{args.repo} has no GGUF files.\n")
        return 0
    _table([[f.name, f.quant or "?", human_bytes(f.size), f"{len(f.parts)} parts" if f.is_split else ""]
            for f in files], ["FILE", "QUANT", "SIZE", ""])
    return 0


class _ProgressPrinter:
    """Progress on stderr: one rewritten line on a terminal, a line every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, event) -> None:
        if event.kind == "progress":
            now = time.monotonic()
            if now - self.last < (0.2 if self.tty else 5.0):
                return
            self.last = now
            total = event.total or 0
            pct = f"{100 * event.bytes / total:5.1f}%" if total else "     "
            eta = f", {int(event.eta) // 60}:{int(event.eta) % 60:02d} left" if event.eta else ""
            line = (f"{pct} {human_bytes(event.bytes)} of {human_bytes(total)} "
                    f"at {human_bytes(event.speed)}/s{eta}")
            sys.stderr.write(("\r" + line.ljust(60)) if self.tty else line + "\n")
        elif event.kind == "started":
            sys.stderr.write(f"downloading {event.filename} from {event.repo} "
                             f"({human_bytes(event.total or 0)})\n")
        elif event.kind == "verifying":
            sys.stderr.write(("\n" if self.tty else "") + "verifying sha256...\n")
        elif event.kind == "paused":
            sys.stderr.write(("\n" if self.tty else "") + "paused; run the same command again to resume\n")
        sys.stderr.flush()


def cmd_download(args: argparse.Namespace) -> int:
    from desktop.hub.download import download_blocking

    dest = Path(args.dir).expanduser() if args.dir else None
    try:
        path = download_blocking(args.repo, args.file, dest, on_event=_ProgressPrinter())
    except KeyboardInterrupt:
        sys.stderr.write("\npaused; run the same command again to resume\n")
        return 130
    sys.stdout.write(f"{path}\n")
    return 0
