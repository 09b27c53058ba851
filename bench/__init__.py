"""Tandem's benchmark suite: the app's own engine measured side by side with llama.cpp's ``llama-bench``.

Run it from a source checkout with ``python -m desktop bench`` (``tandem bench`` where the checkout is on
the path) or ``python -m bench.run``; results land in ``bench/results/`` (JSON and a Markdown table). Not
part of the installed package, nor of the unit tests.
"""
