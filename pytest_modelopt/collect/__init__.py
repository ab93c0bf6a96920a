"""Stage 1, collect: what runs — the eval marker as a spec, datasets, prompt files."""
