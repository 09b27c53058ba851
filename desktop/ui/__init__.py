"""All Qt widgets of Tandem (besides desktop/app.py)."""
