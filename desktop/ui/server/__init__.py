"""The Server page: the app's OpenAI-compatible server over the loaded models, and its live request log."""
