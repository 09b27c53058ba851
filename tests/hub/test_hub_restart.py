"""Resume across processes: a download killed with SIGKILL mid-way resumes in a new process, fetching only
the missing bytes, and the file verifies and lands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = "tandem-test/Tiny-GGUF"
FILE = "tiny-base-Q8_0.gguf"
SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from desktop.hub.download import download_blocking
    from desktop.hub.transfer import RetryPolicy
    path = download_blocking(sys.argv[1], sys.argv[2], Path(sys.argv[3]),
                             policy=RetryPolicy(attempts=3, base=0.05, cap=0.2))
    print(path)
""")


def _run(dest: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, REPO, FILE, str(dest)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_killed_download_resumes_in_a_new_process(fake_hub, tiny_base, dest):
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url}
    fake_hub.delay = 0.01  # ~400 KB/s: the kill lands mid-file
    first = _run(dest, env)
    part = dest / f"{FILE}.part"
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size >= 100_000):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first process never got going"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)  # reaps it and closes our ends of its pipes
    first.stdout.close()  # our ends of its pipes (unclosed, they are a ResourceWarning, an error here)
    first.stderr.close()
    have = part.stat().st_size
    assert 0 < have < tiny_base.stat().st_size
    assert (dest / f"{FILE}.part.json").exists()
    assert not (dest / FILE).exists()  # nothing half-downloaded under the real name

    fake_hub.delay = 0
    gets_before = len(fake_hub.file_gets(FILE))
    second = _run(dest, env)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert out.strip().splitlines()[-1] == str(dest / FILE)
    assert (dest / FILE).read_bytes() == tiny_base.read_bytes()
    resumed = fake_hub.file_gets(FILE)[gets_before:]
    assert [r.range_start for r in resumed] == [have]  # only the missing bytes were asked for
    assert not part.exists() and not (dest / f"{FILE}.part.json").exists()
