"""The token goes to the hub's own token store, is used for downloads, and is never shown or saved by us."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehub import FAST_RETRY, GOOD_TOKEN

from desktop.core import paths
from desktop.core.errors import SettingsError
from desktop.hub.auth import clear_token, set_token, token_status
from desktop.hub.download import download_blocking


@pytest.fixture
def token_store(tmp_path, monkeypatch):
    """Point huggingface_hub's token files (fixed at its import) at this test's HF_HOME."""
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


def test_set_token_validates_and_stores_in_the_hub_store(fake_hub, token_store):
    assert token_status() == token_status(check=False)
    assert not token_status().present
    status = set_token(GOOD_TOKEN)
    assert status.present and status.source == "token store" and status.user == "tester"
    assert (token_store / "token").read_text().strip() == GOOD_TOKEN
    assert GOOD_TOKEN not in repr(status) and GOOD_TOKEN not in repr(token_status())
    # Never in Tandem's own files (settings, logs, cache).
    for f in Path(paths.config_dir()).parent.rglob("*"):
        if f.is_file():
            assert GOOD_TOKEN not in f.read_text(errors="replace"), f
    assert clear_token()
    assert not token_status().present
    assert not clear_token()


def test_a_rejected_token_is_not_stored(fake_hub, token_store):
    with pytest.raises(SettingsError, match="rejected"):
        set_token("hf_wrong")
    assert not (token_store / "token").exists()
    with pytest.raises(SettingsError):
        set_token("has space")


def test_stored_token_opens_a_gated_repo(fake_hub, token_store, dest):
    fake_hub.add_repo("meta/Gated-GGUF", {"g-Q4_K_M.gguf": b"x" * 1000}, gated=True)
    set_token(GOOD_TOKEN)
    path = download_blocking("meta/Gated-GGUF", "g-Q4_K_M.gguf", dest, policy=FAST_RETRY)
    assert path.read_bytes() == b"x" * 1000


def test_env_token_is_reported_but_not_revealed(token_store, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    status = token_status()
    assert status.present and status.source == "environment"
    assert "hf_from_env" not in repr(status)
