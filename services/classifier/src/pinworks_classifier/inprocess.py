"""The classifier's step of `pinworks bench`'s in-process baseline: the same model and
customer-state reader as the service, on a batch of envelopes, without NATS or Postgres.

Found through the entry-point group `pinworks.inprocess` (the CLI imports no service)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pinworks_contracts.messages import TicketEnvelope


def classify_step() -> Callable[[Sequence[TicketEnvelope]], list[TicketEnvelope]]:
    """Load the model once; the step classifies and reads the customer state of a batch."""
    from pinworks_classifier.domain import text_to_classify, to_classification
    from pinworks_classifier.model import IntentModel
    from pinworks_classifier.settings import ClassifierSettings
    from pinworks_common.customer_state import CustomerStateReader

    settings = ClassifierSettings()
    model = IntentModel.load(settings.artifact_dir, encoder_threads=settings.encoder_threads)
    reader = CustomerStateReader(settings.negative_sentiment_threshold)

    def step(batch: Sequence[TicketEnvelope]) -> list[TicketEnvelope]:
        predictions = model.predict([text_to_classify(envelope.ticket) for envelope in batch])
        return [envelope.model_copy(update={
            "classification": to_classification(prediction, model.version),
            "customer_state": reader.read(envelope.ticket.subject, envelope.ticket.body)})
            for envelope, prediction in zip(batch, predictions, strict=True)]

    return step
