"""The evals of a message router: the intent of a customer message.

``test_intent`` grades the intent on 400 labelled messages. Its threshold is what the
product needs (80% of messages routed right), not today's level: the base
SmolLM2-135M-Instruct misses it; the model fine-tuned on the training cases' labels meets
it on the cases it never saw (docs/optimize.md, ./scripts/optimize-demo).

``test_routable`` runs on 200 unlabelled messages, the traffic a router sees: the answer
must be exactly one intent, something the router can act on. When both pass, the run's
answers to those messages are worth learning from (``--eval-distill-to``).
"""

import pytest

from pytest_modelopt import graders

LABELS = ("billing", "shipping", "technical", "account", "returns")

pytestmark = pytest.mark.eval(prompt="prompts/intent.yaml")


@pytest.mark.eval(dataset="data/tickets.jsonl", threshold=0.8)
def test_intent(completion, case, grade):
    """The first intent the answer names is the right one ('Billing.' counts, a list of
    every intent does not)."""
    others = "|".join(label for label in LABELS if label != case["label"])
    grade(
        completion,
        graders.regex(rf"^(?:(?!\b(?:{others})\b).)*\b{case['label']}\b", flags="is"),
        name="intent",
    )


@pytest.mark.eval(dataset="data/unlabelled.jsonl", threshold=0.9)
def test_routable(completion, grade):
    """The answer is one intent and nothing else (any case, a full stop allowed)."""
    grade(
        completion,
        graders.regex(rf"\s*(?:{'|'.join(LABELS)})\.?\s*", flags="i", mode="fullmatch"),
        name="one_intent",
    )
