"""Widgets shared by several pages: model bar, sampling panel, token and prompt views, notices, layout, theme."""
