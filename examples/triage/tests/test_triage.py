"""Four evals of a support-ticket triage assistant, on one dataset of 44 tickets.

Thresholds guard today's quality level of the model under test: individual tickets may
fail (they are listed, not counted as test failures) while the pass rate stays above it.
"""

import pytest
from ticket import Ticket

from pytest_modelopt import graders

pytestmark = pytest.mark.eval(dataset="data/tickets.jsonl", schema=Ticket)


@pytest.mark.eval(prompt="prompts/category.yaml", threshold=0.25)
def test_category(completion, case, grade):
    """The team name appears in the answer (any case: 'Billing' counts)."""
    grade(completion, graders.string_check(reference=case["category"], operation="ilike"))


@pytest.mark.eval(prompt="prompts/order_id.yaml", threshold=0.3)
def test_order_id(completion, case, grade):
    """The order number is copied exactly; 'none' when the ticket has none."""
    grade(completion, graders.string_check(reference=case["order_id"], operation="ilike"))


@pytest.mark.eval(prompt="prompts/title.yaml", threshold=0.1)
def test_title(completion, case, grade):
    """The title shares words with the subject line the customer wrote (ROUGE-1 F1)."""
    grade(
        completion,
        graders.text_similarity(
            reference=case["subject"], evaluation_metric="rouge_1", pass_threshold=0.3
        ),
    )


@pytest.mark.eval(prompt="prompts/reply.yaml", threshold=0.5)
def test_reply(completion, case, grade):
    """A short, polite reply that quotes the order number back when there is one."""
    grade(completion, graders.length(min_words=3, max_words=60))
    if case["order_id"] != "none":
        grade(completion, graders.contains_all([case["order_id"]]), name="quotes_order")
    grade(completion, "polite")  # an LLM judge, defined in pyproject.toml
