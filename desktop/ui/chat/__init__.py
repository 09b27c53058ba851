"""The Chat page: a conversation through the model's chat template."""
