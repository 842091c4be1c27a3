"""The committed AsyncAPI documents are the ones the FastStream apps generate today."""

import json
from pathlib import Path

from pinworks_cli.docs import SERVICES, write_asyncapi

DOCS = Path(__file__).resolve().parents[3] / "docs" / "asyncapi"


def test_committed_asyncapi_matches_the_apps(tmp_path: Path) -> None:
    written = write_asyncapi(tmp_path)
    assert [path.stem for path in written] == list(SERVICES)
    for path in written:
        assert json.loads(path.read_text()) == json.loads((DOCS / path.name).read_text()), (
            f"docs/asyncapi/{path.name} is stale: run `make asyncapi`")


def test_the_public_submission_contract_is_documented(tmp_path: Path) -> None:
    write_asyncapi(tmp_path)
    document = json.loads((tmp_path / "classifier.json").read_text())
    channel = document["channels"]["classifier:tickets.submitted.*"]
    assert channel["address"] == "tickets.submitted.*"
    schema = document["components"]["schemas"]["TicketSubmission"]
    assert set(schema["required"]) == {"ticket_id", "business_unit", "body"}
    assert all(field.get("description") for field in schema["properties"].values())
    outcome = document["components"]["schemas"]["Outcome"]
    assert "cost_usd" in outcome["required"]


def test_every_message_documents_headers_examples_and_each_stage_its_dead_letters(
    tmp_path: Path,
) -> None:
    from pinworks_contracts import messages as contracts

    for path in write_asyncapi(tmp_path):
        document = json.loads(path.read_text())
        headers = document["components"]["schemas"]["PinworksHeaders"]["properties"]
        assert {"Nats-Msg-Id", "traceparent"} <= set(headers)
        dead = [c for c in document["channels"].values()
                if c["address"].startswith("pinworks.deadletter.")]
        assert dead, f"{path.name} documents no dead-letter channel"
        for message in document["components"]["messages"].values():
            assert message["headers"] == {"$ref": "#/components/schemas/PinworksHeaders"}
            [example] = message["examples"]
            assert set(example["headers"]) == {"Nats-Msg-Id", "traceparent"}
            model = getattr(contracts, message["payload"]["$ref"].rsplit("/", 1)[-1])
            model.model_validate(example["payload"])  # the example is a valid message
    router = json.loads((tmp_path / "router.json").read_text())
    assert router["channels"]["deadletter-router"]["address"] == "pinworks.deadletter.router"
    rejected = json.loads((tmp_path / "classifier.json").read_text())["components"]["messages"][
        "outcome-rejected:Message"]["examples"][0]["payload"]
    assert rejected["status"] == "rejected" and rejected["reasons"]
