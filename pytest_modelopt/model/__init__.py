"""The only code that talks to a model: client, wire formats, failures, prices, cache,
helper-process sender, and the embedded local model server."""
