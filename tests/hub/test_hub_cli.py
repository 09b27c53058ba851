"""`tandem models search|files|download` against the fake hub: JSON shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from desktop.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_files_json_is_name_size_quant(fake_hub, tiny_base, tiny_instruct, capsys):
    assert main(["models", "files", "tandem-test/Tiny-GGUF", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == [
        {"name": "tiny-base-Q8_0.gguf", "size": tiny_base.stat().st_size, "quant": "Q8_0"},
        {"name": "tiny-instruct-Q8_0.gguf", "size": tiny_instruct.stat().st_size, "quant": "Q8_0"},
    ]


def test_search_json_and_table(fake_hub, capsys):
    assert main(["models", "search", "tiny", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["tandem-test/Tiny-GGUF"]
    assert main(["models", "search", "tiny"]) == 0
    assert "tandem-test/Tiny-GGUF" in capsys.readouterr().out


def test_missing_repo_exits_1_with_one_line(fake_hub, capsys):
    assert main(["models", "files", "ghost/None-GGUF"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tandem: error: ") and err.count("\n") == 1 and "ghost/None-GGUF" in err


def test_download_prints_progress_on_stderr_and_the_path_last_on_stdout(fake_hub, tiny_base, tmp_path):
    dest = tmp_path / "dl"
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url}
    proc = subprocess.run([sys.executable, "-m", "desktop", "models", "download", "tandem-test/Tiny-GGUF",
                           "tiny-base-Q8_0.gguf", "--dir", str(dest)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(dest / "tiny-base-Q8_0.gguf")
    assert "downloading tiny-base-Q8_0.gguf" in proc.stderr and "verifying" in proc.stderr
    assert (dest / "tiny-base-Q8_0.gguf").read_bytes() == tiny_base.read_bytes()


def test_download_errors_are_one_line(fake_hub, tmp_path, capsys):
    fake_hub.corrupt = True
    assert main(["models", "download", "tandem-test/Tiny-GGUF", "tiny-base-Q8_0.gguf", "--dir",
                 str(tmp_path / "dl")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tandem: error: ") and "checksum" in err[-1]
    assert not any(p.name.endswith(".gguf") for p in (tmp_path / "dl").iterdir())
    assert main(["models", "download", "tandem-test/Tiny-GGUF", "../escape.gguf", "--dir",
                 str(tmp_path / "dl")]) == 1
    assert "refusing" in capsys.readouterr().err
