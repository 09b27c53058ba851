"""A headless stand-in for the app, run as its own process so a test can SIGKILL it: it chats with a model
through the real engine, committing messages to the real HistoryStore as the Chat pane does (the user's
message at once, the streaming reply every few tokens, then complete), while a real DownloadManager
fetches a file. Every commit is announced on stdout only after it returned, so the test knows exactly
what must survive the kill.

    python faults_app.py MODEL [REPO FILE DEST]
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

COMMIT_EVERY = 8  # tokens between periodic saves of a streaming reply


def say(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def main() -> None:
    from desktop.core.history import HistoryStore
    from desktop.engine import FinalEvent, LoadOptions, SamplingParams, load_model

    model_path = sys.argv[1]
    if len(sys.argv) > 2:
        from desktop.hub.download import DownloadManager
        from desktop.hub.transfer import RetryPolicy

        repo, filename, dest = sys.argv[2], sys.argv[3], Path(sys.argv[4])
        manager = DownloadManager(dest, policy=RetryPolicy(attempts=3, base=0.05, cap=0.2))
        manager.subscribe(lambda e: say("DOWNLOAD", e.kind, e.bytes) if e.kind in ("started", "done") else None)
        manager.download(repo, filename)
    store = HistoryStore()
    handle = load_model(model_path, LoadOptions(threads=1, n_ctx=2048, gpu_layers=0))
    say("WORKER", handle.pid, os.getpid())
    chat = store.create_chat("kill test", model=Path(model_path).name)
    # Never ends by itself: the model may only write lowercase letters and spaces, forever.
    params = SamplingParams(max_tokens=1500, grammar='root ::= [a-z ] root', temperature=1.0)
    turn = 0
    while True:
        turn += 1
        user_text = f"turn {turn}: tell me a story"
        user_id = store.add_message(chat, "user", user_text)
        say("COMMIT", user_id, len(user_text), digest(user_text), 1)
        messages = [{"role": "user", "content": user_text}]
        reply_id = store.add_message(chat, "assistant", "", complete=False)
        say("COMMIT", reply_id, 0, digest(""), 0)
        text, since = "", 0
        for event in handle.chat(messages, params):
            if isinstance(event, FinalEvent):  # a reply's version is announced, then saved: a kill in between
                say("COMMIT", reply_id, len(event.text), digest(event.text), 1)  # leaves the one before
                store.update_message(reply_id, event.text, complete=True)
                break
            text += event.text
            since += 1
            if since >= COMMIT_EVERY:
                say("COMMIT", reply_id, len(text), digest(text), 0)
                store.update_message(reply_id, text)
                since = 0


if __name__ == "__main__":
    main()
