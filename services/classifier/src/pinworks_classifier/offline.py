"""The classifier for offline tools: classify a batch of submissions without NATS or Postgres.

`pinworks policy simulate` (the router's command) needs the classifier's verdict on each ticket
but may not import the classifier: it finds `classify_tickets` through the entry-point group
`pinworks.offline_classifier` declared in this package's pyproject.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pinworks_contracts.messages import Classification, TicketSubmission


def classify_tickets(tickets: Sequence[TicketSubmission], artifact_dir: Path | None = None
                     ) -> tuple[list[Classification], str]:
    """Each ticket's classification by the artifact in ``artifact_dir`` (default: the shipped
    model), and that model's version."""
    from pinworks_classifier.domain import text_to_classify, to_classification
    from pinworks_classifier.model import IntentModel

    model = IntentModel.load(artifact_dir)
    predictions = model.predict([text_to_classify(t) for t in tickets])
    return [to_classification(p, model.version) for p in predictions], model.version
