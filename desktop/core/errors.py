"""Every error a Tandem user can meet, each a named class whose message a person understands.

    TandemError                      base class; str(err) is the one-line message shown to the user
    ├── ModelFileError               not a GGUF, truncated, unsupported architecture, unreadable
    ├── EngineError                  the inference engine refused or failed a request
    │   ├── EngineCrashed            the worker process died (segfault, abort, OOM kill); carries stderr tail
    │   ├── ContextOverflow          the prompt does not fit the context window; carries the numbers
    │   ├── GrammarError             an invalid GBNF grammar or JSON schema
    │   ├── ChatTemplateError        the model's chat template failed, or the model has none (a base model)
    │   ├── EngineBusy               a request was made while another one still runs on that model
    │   └── RemoteError              a remote inference server refused, failed or could not be reached
    │       ├── ServerUnreachable    nothing answers at the endpoint's address (or offline mode forbids it)
    │       ├── ServerAuthError      401/403: the API key is missing or wrong
    │       ├── UnknownModel         the server does not serve that model id
    │       ├── ServerBusy           429/5xx; carries the server's Retry-After in seconds
    │       └── ServerProtocolError  a reply that is not what the engine's API documents (malformed JSON/SSE)
    ├── HubError                     talking to Hugging Face failed
    │   ├── OfflineError             offline mode is on, so nothing may leave the machine
    │   ├── RepoNotFound             no such repository or file
    │   ├── GatedRepoError           401/403: a token or an accepted licence is needed
    │   └── DownloadError            a transfer failed
    │       ├── ChecksumMismatch     the bytes did not match the hub's sha256; they were deleted
    │       ├── DiskFullError        not enough free space for the file
    │       └── DownloadCancelled    the user cancelled (the .part file is kept when paused)
    ├── LibraryError                 the local model library (import, remove, bad names)
    ├── SettingsError                a settings value is out of range or the file is unreadable
    ├── EndpointError                the endpoints store: bad name or URL, no keyring, unknown endpoint
    ├── HistoryError                 the history database could not be read or written
    ├── VocabMismatch                two models that must share a vocabulary (token shift) do not
    ├── ExperimentError              a prompt set or an experiment folder can't be used
    └── QtPlatformError              Qt can't open a window: system libraries for its xcb plugin are missing

Errors cross the engine's process boundary by pickling, so every class keeps its constructor
arguments in ``args`` (the default behaviour of ``Exception``).
"""

from __future__ import annotations


class TandemError(Exception):
    """Base of all errors Tandem reports to a person; the message is a complete sentence."""

    def __str__(self) -> str:  # the first argument is the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class ModelFileError(TandemError):
    """The model file can't be used: not a GGUF, truncated, corrupt or unsupported."""


class EngineError(TandemError):
    """The inference engine refused or failed a request."""


class EngineCrashed(EngineError):
    """The worker process running a model died. ``stderr_tail`` holds its last stderr lines."""

    def __init__(self, message: str, stderr_tail: str = "", exitcode: int | None = None):
        super().__init__(message, stderr_tail, exitcode)
        self.stderr_tail = stderr_tail
        self.exitcode = exitcode


class ContextOverflow(EngineError):
    """The prompt is longer than the model's context window allows."""

    def __init__(self, message: str, prompt_tokens: int = 0, n_ctx: int = 0):
        super().__init__(message, prompt_tokens, n_ctx)
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


class GrammarError(EngineError):
    """A GBNF grammar or JSON schema that llama.cpp would not accept."""


class ChatTemplateError(EngineError):
    """The chat template is missing (a base model) or failed to render."""


class ScoringUnavailable(EngineError):
    """The model's backend can't score given text (a server without that route, or one whose numbers failed
    Tandem's check); ``note`` is its ``Capabilities.scoring_note``, the message that note as a sentence."""

    def __init__(self, note: str, message: str = ""):
        note = note.strip().rstrip(".") or "this backend can't score given text"
        super().__init__(message or f"{note[0].upper()}{note[1:]}.")
        self.note = note


class EngineBusy(EngineError):
    """The model is already running a request."""


class RemoteError(EngineError):
    """A remote inference server refused or failed a request."""


class ServerUnreachable(RemoteError):
    """Nothing answers at the endpoint's address, or offline mode forbids reaching it."""


class ServerAuthError(RemoteError):
    """The server answered 401 or 403."""


class UnknownModel(RemoteError):
    """The server does not serve the model id that was asked for."""


class ServerBusy(RemoteError):
    """429 or 5xx. ``retry_after`` is the server's Retry-After in seconds (None when it gave none)."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None):
        super().__init__(message, status, retry_after)
        self.status = status
        self.retry_after = retry_after


class ServerProtocolError(RemoteError):
    """The server's reply is not what its API documents (malformed JSON or SSE, NaN logprobs)."""


class HubError(TandemError):
    """Talking to Hugging Face failed."""


class OfflineError(HubError):
    """Offline mode is on: no request may leave the machine."""


class RepoNotFound(HubError):
    """The repository or file does not exist on the hub."""


class GatedRepoError(HubError):
    """The repository needs a token or an accepted licence."""


class DownloadError(HubError):
    """A download failed."""


class ChecksumMismatch(DownloadError):
    """The downloaded bytes did not match the hub's checksum; they were deleted."""


class DiskFullError(DownloadError):
    """Not enough free disk space."""


class DownloadCancelled(DownloadError):
    """The user cancelled or paused the download; ``reason`` is "cancel" or "pause"."""

    def __init__(self, reason: str = "cancel"):
        super().__init__("The download was paused." if reason == "pause" else "The download was cancelled.")
        self.reason = reason


class LibraryError(TandemError):
    """The local model library could not do what was asked."""


class SettingsError(TandemError):
    """A settings value is invalid or the settings file is unreadable."""


class EndpointError(TandemError):
    """The endpoints store could not do what was asked (bad name or URL, no keyring, unknown endpoint)."""


class HistoryError(TandemError):
    """The history database could not be read or written."""


class VocabMismatch(TandemError):
    """Two models that must share a vocabulary (token shift) do not."""


class ExperimentError(TandemError):
    """A prompt set, an experiment folder or its settings can't be used."""


class QtPlatformError(TandemError):
    """Qt's xcb platform plugin can't load: system libraries are missing (carries sonames and packages)."""

    def __init__(self, missing: list[str], packages: list[str]):
        super().__init__(missing, packages)
        self.missing, self.packages = list(missing), list(packages)

    def __str__(self) -> str:
        return (f"the window can't open: Qt's X11 (xcb) plugin needs {', '.join(self.missing)}, missing on this "
                f"system; install them with: sudo apt install {' '.join(self.packages)} (Debian/Ubuntu), or run "
                "under Wayland (QT_QPA_PLATFORM=wayland)")
