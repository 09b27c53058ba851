"""llama_cpp and numpy for the worker's modules, imported only once a worker process has started.

The app's own process imports ``desktop.engine.worker`` to name the function a worker process runs; loading
llama.cpp's shared libraries (and numpy) there would cost memory and start time for nothing. So the worker's
modules write ``from desktop.engine.native import L, np`` and use ``L.llama_decode(...)`` as if they had
imported the modules themselves: ``L`` and ``np`` are stand-ins that ``load()`` points at the real modules
(an attribute is looked up once, then kept on the stand-in). Before ``load()`` any use says so.

This is the one module that imports llama_cpp (tests/test_imports.py keeps it so); the two submodules the
worker needs beyond ``L`` (the JSON-schema grammar converter and the ggml device registry) come through the
functions at the end.
"""

from __future__ import annotations

from typing import Any


class _Deferred:
    def __init__(self, name: str):
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        module = self.__dict__.get("_module")
        if module is None:
            raise RuntimeError(f"{self.__dict__.get('_name')} is not loaded: the worker calls native.load() first")
        value = getattr(module, attr)
        setattr(self, attr, value)  # the next lookup is a plain attribute
        return value


L: Any = _Deferred("llama_cpp")
np: Any = _Deferred("numpy")


def load() -> None:
    """Import llama_cpp and numpy (in a worker process) and point ``L`` and ``np`` at them."""
    import llama_cpp
    import numpy

    L._module = llama_cpp
    np._module = numpy


def json_schema_to_gbnf(schema: str) -> str:
    """llama-cpp-python's JSON schema -> GBNF converter (pure Python; imported on first use)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf as convert

    return convert(schema)


def ggml_library() -> Any:
    """The loaded ggml library (its backend device registry), for the hardware report."""
    from llama_cpp import _ggml

    return _ggml.libggml


def library_folder() -> str:
    """The folder of llama-cpp-python's shared libraries (libllama, libggml-cpu, ...)."""
    import os

    import llama_cpp

    return os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
