"""The CLI's command list and its shared flags: every listed module imports and registers its commands (a
misspelt name used to be skipped without a word), and one validator holds the rule for every count flag."""

from __future__ import annotations

import argparse
import importlib

import pytest

from desktop.cli import _COMMAND_MODULES, build_parser
from desktop.cli.engine_cmds import whole_number


@pytest.mark.parametrize("name", _COMMAND_MODULES)
def test_every_listed_command_module_imports_and_registers(name):
    module = importlib.import_module(name)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    module.register(sub)
    assert sub.choices, f"{name} registered no command"


def test_the_parser_offers_each_module_s_commands():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert {"complete", "chat", "score", "compare", "endpoints", "selftest"} <= commands


def test_a_misspelt_command_module_fails_loudly(monkeypatch):
    import desktop.cli as cli

    monkeypatch.setattr(cli, "_COMMAND_MODULES", (*_COMMAND_MODULES, "desktop.cli.no_such_cmds"))
    with pytest.raises(ModuleNotFoundError):
        cli.build_parser()


def test_whole_number_has_one_rule_with_its_minimum():
    count, at_least_one = whole_number(0), whole_number(1)
    assert count("0") == 0 and at_least_one("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="must be 1 or more, got 0"):
        at_least_one("0")
    with pytest.raises(argparse.ArgumentTypeError, match="must be 0 or more, got -2"):
        count("-2")
    with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number, got '2.5'"):
        count("2.5")


def test_model_and_endpoint_flags_are_one_set_on_complete_chat_and_score():
    parser = build_parser()
    for command in ("complete", "chat", "score"):
        extra = ["--prompt", "a", "--continuation", "b"] if command == "score" else ["hi"]
        args = parser.parse_args([command, "--model", "m.gguf", "--endpoint", "box", *extra])
        assert (args.model, args.endpoint) == ("m.gguf", "box")


def test_bench_is_not_offered_where_the_checkout_s_bench_is_missing(tmp_path):
    """An installed app has desktop/ but no bench/: `tandem --help` must not list a command it would refuse."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import desktop

    site = tmp_path / "site"
    site.mkdir()
    (site / "desktop").symlink_to(Path(desktop.__file__).parent)
    env = {**os.environ, "PYTHONPATH": str(site), "QT_QPA_PLATFORM": "offscreen"}
    code = "from desktop.cli import build_parser; print(sorted(build_parser()._subparsers._group_actions[0].choices))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'complete'" in out.stdout and "'bench'" not in out.stdout
    here = subprocess.run([sys.executable, "-c", code], cwd=Path(desktop.__file__).parents[1], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "'bench'" in here.stdout  # from a checkout, `python -m desktop bench` still runs it
