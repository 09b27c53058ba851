"""The Models page: library, catalog, search and downloads."""
