"""How the Endpoints dialog words things: an endpoint's line in the list, and what "Test connection" found.

Qt-free text (HTML for the result pane), so the wording is in one place and a test can read it.
"""

from __future__ import annotations

from html import escape


def endpoint_line(name: str, url: str, api_key_env: str, has_key: bool) -> str:
    """'gpu-box — http://gpu-box:8000 · key in the keyring' (never the key itself)."""
    if api_key_env:
        key = f"key from ${api_key_env}"
    else:
        key = "key in the keyring" if has_key else "no key"
    return f"{name} — {url} · {key}"


def _yes_no(on: bool, note: str) -> str:
    return "yes" if on else f"no <span style='color: palette(placeholder-text);'>({escape(note)})</span>"


def describe_html(report: dict) -> str:
    """The server, then each model and what it can do (scoring checked against its own generation)."""
    version = f" {report['version']}" if report.get("version") else ""
    models = report.get("models") or []
    head = (f"<b>{escape(report.get('engine_label') or report.get('engine') or 'server')}{escape(version)}</b> "
            f"at {escape(report.get('url', ''))}: {len(models)} model{'' if len(models) == 1 else 's'}")
    rows = []
    for m in models:
        c = m.get("capabilities") or {}
        ctx = f", {m['n_ctx']:,}-token context" if m.get("n_ctx") else ""
        top = c.get("top_logprobs") or 0
        rows.append(
            f"<li><b>{escape(str(m.get('id')))}</b> ({escape(str(m.get('kind', '')))}{ctx})<br>"
            f"scoring given text: {_yes_no(bool(c.get('scoring')), c.get('scoring_note') or '')}<br>"
            f"chat template rendering: {_yes_no(bool(c.get('server_template')), c.get('template_note') or '')}<br>"
            f"top-k logprobs: {f'up to {top}' if top else 'none'} · "
            f"tokenizer: {'yes' if c.get('tokenizer') else 'no'}</li>")
    if not rows:
        rows.append("<li>It serves no models right now.</li>")
    return f"{head}<ul>{''.join(rows)}</ul>"
