"""The ``local`` fine-tuning backend: Hugging Face TRL on this machine (parent, rows, child)."""
