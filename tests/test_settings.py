from __future__ import annotations

import json

import pytest

from desktop.core import paths
from desktop.core.errors import SettingsError
from desktop.core.settings import Settings, load_settings, save_settings


def test_defaults_when_missing():
    assert load_settings() == Settings()


def test_roundtrip_keeps_values_and_unknown_keys(tandem_home):
    s = Settings(threads=3, offline=True, ui_state={"geometry": "abc"})
    save_settings(s)
    raw = json.loads(paths.settings_path().read_text())
    assert raw["version"] == 1 and raw["threads"] == 3
    raw["from_the_future"] = [1, 2]
    paths.settings_path().write_text(json.dumps(raw))
    loaded = load_settings()
    assert loaded.threads == 3 and loaded.offline is True and loaded.ui_state == {"geometry": "abc"}
    save_settings(loaded)
    assert json.loads(paths.settings_path().read_text())["from_the_future"] == [1, 2]


def test_corrupt_file_gives_defaults(tandem_home):
    paths.settings_path().write_text("{not json")
    assert load_settings() == Settings()


def test_bad_values_are_refused_on_save():
    with pytest.raises(SettingsError, match="GPU layers"):
        save_settings(Settings(gpu_layers="lots"))
    with pytest.raises(SettingsError, match="Theme"):
        save_settings(Settings(theme="purple"))


def test_tandem_home_moves_every_dir(tandem_home):
    for d in (paths.config_dir(), paths.data_dir(), paths.cache_dir(), paths.log_dir()):
        assert tandem_home in d.parents


def test_settings_store_page_state_and_endpoint_writes_keep_each_other(tandem_home):
    """The page-state saver and the endpoints dialog write the same file through one SettingsStore: a late
    page-state write must not undo an endpoint just added, nor an endpoint write drop the page state."""
    from desktop.ui.runtime.settings_store import SettingsStore

    store = SettingsStore(Settings())
    store.set_ui_state("chat", {"model": "a.gguf"})
    store.endpoint_store().add("box", "http://127.0.0.1:8000")
    store.set_ui_state("compare", {"tab": 2})
    store.flush()
    on_disk = load_settings()
    assert set(on_disk.endpoints) == {"box"} and on_disk.endpoints["box"]["url"] == "http://127.0.0.1:8000"
    assert on_disk.ui_state == {"chat": {"model": "a.gguf"}, "compare": {"tab": 2}}
    with pytest.raises(SettingsError):
        store.update(threads=-1)
    assert store.settings.threads == 0 and load_settings().threads == 0
