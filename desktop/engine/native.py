"""llama_cpp and numpy, imported only inside a worker process.

The app's own process imports ``desktop.engine.worker`` to name the function a worker process runs; loading
llama.cpp's shared libraries there would cost memory and start time for nothing. So the worker's modules
read ``native.L`` / ``native.np``, which ``load()`` fills once the worker process has started.
"""

from __future__ import annotations

from typing import Any

L: Any = None
np: Any = None


def load() -> None:
    global L, np
    import llama_cpp
    import numpy

    L = llama_cpp
    np = numpy
