"""A small customer-support agent built with the OpenAI Agents SDK (the example's app)."""
