"""Qt plumbing off the widgets: background workers, the app context, model loading and the GUI-thread collector."""
