"""Stage 2, generate: declared completions produced ahead of the tests — the plan, the
concurrent generator, and OpenAI's Batch API."""
