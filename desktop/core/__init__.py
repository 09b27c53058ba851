"""Pure-Python core: paths, errors, settings, catalog, library, history. No Qt, llama_cpp or huggingface_hub."""
