"""Hugging Face: search, file lists, resumable verified downloads. The only importer of huggingface_hub."""
