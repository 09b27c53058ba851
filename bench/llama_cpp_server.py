"""``python -m bench.llama_cpp_server ARGS``: llama-cpp-python's ``python -m llama_cpp.server ARGS``, with llama.cpp's
weight repacking (extra buffer types) off where Tandem's engine turns it off (``bench.serve_refs.amx_usable``).

``llama_cpp.server`` has no option for it, and on this project's test VMs its AMX kernels die with SIGILL on the
first batch of more than one token, so the model's default parameters are patched before the server loads it.
Nothing else changes: the comparison is with llama-cpp-python's server as a user runs it.
"""

from __future__ import annotations

import runpy

import llama_cpp.llama_cpp as llama_low

from bench.serve_refs import amx_usable


def _patch() -> None:
    original = llama_low.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    llama_low.llama_model_default_params = params


if __name__ == "__main__":
    if not amx_usable():
        _patch()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
