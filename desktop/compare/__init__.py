"""Compare's logic with no Qt: presets, cross-scoring analysis and the run record, shared by the pane and the CLI."""
