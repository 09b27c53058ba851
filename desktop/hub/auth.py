"""The Hugging Face token: stored in the hub's own token store, never in Tandem's settings, logs or database.

``set_token`` checks the token with the hub (``whoami``) unless offline, then saves it exactly where
``hf auth login`` would (so the user's other tools see it too, and Tandem sees theirs). ``token_status``
says whether a token is present and where it comes from, never what it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub import errors as hf_errors
from huggingface_hub._login import _set_active_token
from huggingface_hub.utils._auth import _get_token_from_environment, _save_token, get_stored_tokens

from desktop.core.errors import HubError, SettingsError
from desktop.hub._common import call, endpoint, is_offline

log = logging.getLogger("tandem.hub.auth")
_DEFAULT_NAME = "tandem"


@dataclass(frozen=True)
class TokenStatus:
    present: bool
    source: str | None  # "environment" (HF_TOKEN) | "token store" | None
    name: str | None = None  # the token's display name in the store, when known (not secret)
    user: str | None = None  # the account, when checked online


def token_status(check: bool = False) -> TokenStatus:
    """Is there a token, and from where? With ``check`` (online only), also which account it belongs to."""
    env = _get_token_from_environment()
    token = env or get_token()
    if not token:
        return TokenStatus(False, None)
    source = "environment" if env else "token store"
    name = next((n for n, t in get_stored_tokens().items() if t == token), None)
    user = None
    if check and not is_offline():
        info = call(lambda: HfApi(endpoint=endpoint()).whoami(token=token), "(token)", "check the token")
        user = info.get("name")
    return TokenStatus(True, source, name, user)


def set_token(token: str, *, validate: bool = True) -> TokenStatus:
    """Save ``token`` in the hub's token store and make it the active one."""
    token = (token or "").strip()
    if not token or any(c.isspace() for c in token):
        raise SettingsError("That does not look like a Hugging Face token (it is empty or has spaces).")
    if token.startswith("api_org"):
        raise SettingsError("Organization tokens cannot be used; create a personal access token instead.")
    name, user = _DEFAULT_NAME, None
    if validate and not is_offline():
        try:
            info = call(lambda: HfApi(endpoint=endpoint()).whoami(token=token), "(token)", "check the token")
        except HubError as exc:
            cause = exc.__cause__
            if isinstance(cause, hf_errors.HfHubHTTPError) and cause.response is not None and \
                    cause.response.status_code in (401, 403):
                raise SettingsError("Hugging Face rejected that token; check it was copied completely.") from None
            raise
        user = info.get("name")
        access = (info.get("auth") or {}).get("accessToken") or {}
        name = access.get("displayName") or (f"tandem-{user}" if user else _DEFAULT_NAME)
    _save_token(token=token, token_name=name)
    _set_active_token(token_name=name, add_to_git_credential=False)
    log.info("a Hugging Face token was saved to the hub's token store (name %s)", name)
    return TokenStatus(True, "environment" if _get_token_from_environment() else "token store", name, user)


def clear_token() -> bool:
    """Forget the active stored token (not HF_TOKEN, which the environment owns). True if one was removed."""
    active = Path(constants.HF_TOKEN_PATH)
    try:
        token = active.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return False
    from huggingface_hub.utils._auth import _read_stored_tokens_full, _save_stored_tokens_full

    stored = _read_stored_tokens_full()
    kept = {n: v for n, v in stored.items() if v.get("hf_token") != token}
    if kept != stored:
        _save_stored_tokens_full(kept)
    active.unlink(missing_ok=True)
    log.info("the active Hugging Face token was removed from the hub's token store")
    return True
