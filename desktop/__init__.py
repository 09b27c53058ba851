"""Tandem: base and instruction-tuned language models side by side, on your own machine."""

__version__ = "0.1.0"
