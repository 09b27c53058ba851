"""The models the saved endpoints serve, as every picker lists them, and how a picker names one.

A picker's item holds a string: a local model's path, or a remote model's *ref* ``endpoint:NAME/MODEL_ID``
(an endpoint name has no '/', a model id may). ``RemoteCatalog`` asks each saved endpoint which models it
serves, off the GUI thread, when the app starts and whenever the endpoints change; offline mode refuses a
non-loopback endpoint before any DNS lookup and the picker shows that one-line reason under its name.
The API key never passes through here: the engine reads it from the keyring when it opens the model.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from desktop.engine.backends import EndpointModels, endpoint_models
from desktop.ui.runtime.workers import CoalescingRefresh

PREFIX = "endpoint:"


def remote_ref(endpoint: str, model_id: str) -> str:
    return f"{PREFIX}{endpoint}/{model_id}"


def parse_ref(ref: str) -> tuple[str, str] | None:
    """(endpoint, model id) of a remote ref; None for a local path."""
    if not ref.startswith(PREFIX) or "/" not in ref:
        return None
    endpoint, _, model_id = ref[len(PREFIX):].partition("/")
    return endpoint, model_id


def short_id(model_id: str) -> str:
    """A model id as a picker shows it: llama-server and llama-cpp-python name a model by its file path
    (show the file name); a hub-style id such as ``meta-llama/Llama-3.1-70B`` stays whole."""
    if model_id.startswith(("/", "~")) or "\\" in model_id or model_id.lower().endswith(".gguf"):
        return model_id.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or model_id
    return model_id


def ref_label(ref: str) -> str:
    """How a person reads a ref: 'model-id @ endpoint'."""
    parsed = parse_ref(ref)
    return f"{short_id(parsed[1])} @ {parsed[0]}" if parsed else ref


def list_endpoints() -> list[EndpointModels]:
    """Every saved endpoint's models (blocking; one quick request each, a fault becomes its line)."""
    from desktop.core.endpoints import EndpointStore
    from desktop.core.errors import TandemError

    try:
        names = [ep.name for ep in EndpointStore().list()]
    except TandemError as exc:
        return [EndpointModels("endpoints", "", error=str(exc))]
    return [endpoint_models(name) for name in names]


class RemoteCatalog(QObject):
    """The saved endpoints and their models. ``changed(list[EndpointModels])`` arrives on the GUI thread."""

    changed = Signal(list)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._entries: list[EndpointModels] = []
        self._refresh = CoalescingRefresh(lambda: list_endpoints, self._on_listed, self._on_failed,
                                          name="tandem-endpoints")
        self.scanned = False

    @property
    def entries(self) -> list[EndpointModels]:
        return list(self._entries)

    def refresh(self) -> None:
        """Ask the endpoints again (after an edit in Settings, or a change of offline mode)."""
        self._refresh.refresh()

    def _on_listed(self, entries: list[EndpointModels]) -> None:
        self._entries = entries
        self.scanned = True
        self.changed.emit(list(entries))

    def _on_failed(self, exc: BaseException) -> None:
        self._on_listed([EndpointModels("endpoints", "", error=f"Could not read the endpoints: {exc}")])

    def stop(self) -> None:
        """At exit: a listing still on its way is dropped unseen."""
        self._refresh.stop()

    def entry(self, endpoint: str) -> EndpointModels | None:
        return next((e for e in self._entries if e.endpoint == endpoint), None)
