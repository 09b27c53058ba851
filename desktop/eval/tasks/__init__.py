"""The project's own lm-eval tasks: YAML configs, their questions (jsonl) and the loader the YAMLs name.

Give this folder to lm-eval as ``--include_path``. The questions were written for Tandem (easy general
knowledge, commonsense, arithmetic and word meaning), not copied from any dataset.
"""
