"""The Compare page: one prompt through a base and an instruct model side by side."""
