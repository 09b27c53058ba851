"""`tandem serve`'s refusals: one line, before any model is loaded."""

from __future__ import annotations

import socket

import pytest

from desktop.cli import main
from desktop.cli.serve_cmd import model_ids


def test_non_loopback_host_without_key_is_refused(tiny_base, capsys):
    assert main(["serve", "--model", str(tiny_base), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.strip().splitlines()[-1].startswith("tandem: error: refusing to serve on 0.0.0.0")


def test_empty_key_variable_and_port_in_use(tiny_base, capsys, monkeypatch):
    monkeypatch.delenv("TANDEM_TEST_KEY", raising=False)
    assert main(["serve", "--model", str(tiny_base), "--host", "0.0.0.0", "--api-key-env", "TANDEM_TEST_KEY"]) == 2
    assert "TANDEM_TEST_KEY" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", "--model", str(tiny_base), "--port", str(port), "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "in use" in err and "Traceback" not in err


def test_model_ids_are_names_never_paths(tiny_base, tiny_instruct):
    assert model_ids([str(tiny_base), str(tiny_instruct)]) == [("tiny-base", str(tiny_base)),
                                                              ("tiny-instruct", str(tiny_instruct))]
    with pytest.raises(Exception, match="both be served"):
        model_ids([str(tiny_base), str(tiny_base)])
