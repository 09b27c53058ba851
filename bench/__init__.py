"""Tandem's benchmark suite: the app's own engine measured side by side with llama.cpp's ``llama-bench``.

Run it with ``tandem bench`` or ``python -m bench.run`` from a source checkout; results land in
``bench/results/`` (JSON and a Markdown table). Not part of the unit tests.
"""
