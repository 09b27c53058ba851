"""`tandem catalog` and the local `tandem models` commands: JSON shapes, tables, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.cli import main
from desktop.core.settings import Settings, save_settings

ROOT = Path(__file__).resolve().parents[1]
INFO_KEYS = {"name", "architecture", "parameters", "quantization", "context_length", "kind",
             "has_chat_template", "file_size"}


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "lib"
    save_settings(Settings(models_dir=str(path)))
    return path


def test_info_json_on_the_tiny_models(tiny_base, tiny_instruct, capsys):
    assert main(["models", "info", str(tiny_base), "--json"]) == 0
    base = json.loads(capsys.readouterr().out)
    assert set(base) == INFO_KEYS
    assert base["kind"] == "base" and base["has_chat_template"] is False and base["architecture"] == "llama"
    assert base["file_size"] == tiny_base.stat().st_size and base["parameters"] > 100_000
    assert main(["models", "info", str(tiny_instruct), "--json"]) == 0
    instruct = json.loads(capsys.readouterr().out)
    assert instruct["kind"] == "instruct" and instruct["has_chat_template"] is True
    assert instruct["context_length"] == 2048 and instruct["quantization"] == "F32"


def test_info_human_readable(tiny_instruct, capsys):
    assert main(["models", "info", str(tiny_instruct)]) == 0
    out = capsys.readouterr().out
    assert "instruct" in out and "chat template" in out and "llama" in out


@pytest.mark.parametrize("content, fragment", [
    (None, "truncated"), (b"plain text, not a model\n", "not a GGUF file"), (b"", "only 0 bytes"),
])
def test_info_on_bad_files_exits_1_with_one_line(tmp_path, tiny_base, content, fragment):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(tiny_base.read_bytes()[:5000] if content is None else content)
    proc = subprocess.run([sys.executable, "-m", "desktop", "models", "info", str(bad), "--json"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ}, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("tandem: error: ") and proc.stderr.count("\n") == 1 and fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_import_list_remove(models, tiny_base, tiny_instruct, tmp_path, capsys):
    assert main(["models", "import", str(tiny_base)]) == 0
    assert capsys.readouterr().out.strip() == str(models / "tiny-base.gguf")
    assert main(["models", "import", str(tiny_instruct), "--link"]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    listed = {e["name"]: e for e in json.loads(capsys.readouterr().out) if e["source"] == "library"}
    assert set(listed) == {"tiny-base", "tiny-instruct"}
    assert listed["tiny-base"]["kind"] == "base" and listed["tiny-base"]["pair"] == str(tiny_instruct)
    assert listed["tiny-instruct"]["linked"] is True
    (models / "broken.gguf").write_text("nope")
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    assert "tiny-base" in table and "pair: tiny-instruct.gguf" in table
    assert "broken" in table and "not a GGUF file" in table
    assert main(["models", "remove", "tiny-base"]) == 0
    assert "removed" in capsys.readouterr().out and not (models / "tiny-base.gguf").exists()
    assert main(["models", "remove", "tiny-instruct"]) == 0
    assert tiny_instruct.exists()  # linked: unlisted, never deleted
    assert main(["models", "remove", "nothing-here"]) == 1
    assert capsys.readouterr().err.startswith("tandem: error: no model named")


def test_import_of_a_bad_file_fails_cleanly(models, tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    bad.write_text("junk")
    assert main(["models", "import", str(bad)]) == 1
    assert "not a GGUF file" in capsys.readouterr().err
    assert not (models / "bad.gguf").exists()


def test_import_of_several_files_is_all_or_nothing_and_can_be_repeated(models, tiny_base, tiny_instruct, tmp_path,
                                                                        capsys):
    missing = tmp_path / "typo.gguf"
    assert main(["models", "import", str(tiny_base), str(missing)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert not (models / "tiny-base.gguf").exists()  # the good first file was not copied either
    assert main(["models", "import", str(tiny_base), str(tiny_instruct)]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [str(models / "tiny-base.gguf"), str(models / "tiny-instruct.gguf")]
    assert "copied tiny-base (base" in out.err and "copied tiny-instruct (instruct" in out.err
    assert main(["models", "import", str(tiny_base), str(tiny_instruct)]) == 0  # again: nothing to do
    assert capsys.readouterr().err.count("already in the library") == 2
    other = tmp_path / "other" / "tiny-base.gguf"  # same name, different content: refused, kept
    other.parent.mkdir()
    other.write_bytes(tiny_instruct.read_bytes())
    assert main(["models", "import", str(other)]) == 1
    assert "already in the library" in capsys.readouterr().err
    assert (models / "tiny-base.gguf").read_bytes() == tiny_base.read_bytes()


def test_catalog_table_and_json(capsys):
    assert main(["catalog", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) >= 8
    for fam in data:
        assert fam["base"]["files"] and fam["instruct"]["files"] and fam["license"] and fam["context_length"]
        assert fam["pair_fit"]["verdict"] in ("fits", "tight", "won't fit")
    assert main(["catalog"]) == 0
    assert "qwen2.5-0.5b" in capsys.readouterr().out


def test_hub_commands_offline_are_one_line_errors(capsys):
    save_settings(Settings(offline=True))
    for argv in (["models", "search", "qwen"], ["models", "files", "Qwen/Qwen2.5-0.5B-Instruct-GGUF"],
                 ["models", "download", "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("tandem: error: ") and "offline" in err and err.count("\n") == 1


def test_models_without_action_shows_help(capsys):
    assert main(["models"]) == 2
    assert "download" in capsys.readouterr().err
