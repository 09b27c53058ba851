"""The Completion page: raw text continuation."""
