"""Prompt injections through the real pipeline: tickets carrying an injection go to `llm_small`,
whose real chat-completions server (`fake_llm`) answers as a model that obeyed would; the
specialist must have fenced the ticket as data, and the verifier must escalate every obeying
draft with the check named in the corpus (tests/e2e/data/prompt_injections.json) among its
failing ones. Padded drafts carry the obeying sentence inside the cited passage's own words,
so that groundedness cannot be what catches them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pinworks_devtools.chat_server import ChatServer, Reply, completion
from pinworks_specialists.llm import TICKET_CLOSE, TICKET_OPEN

from .conftest import PlatformClient, run_id
from .test_specialists import CANADA, route_directly

pytestmark = pytest.mark.e2e

CORPUS = json.loads((Path(__file__).parent / "data" / "prompt_injections.json").read_text())
INJECTIONS: list[dict[str, Any]] = CORPUS["injections"]


def first_passage(request: dict[str, Any]) -> tuple[str, str]:
    """The id and text of the first passage the request gave the model."""
    user = request["messages"][1]["content"]
    block = user.split("Help-centre passages:\n\n", 1)[1].split("\n\n", 1)[0]
    header, text = block.split("\n", 1)
    return header[1:header.index("]")], text


def obeying(entry: dict[str, Any]) -> Any:
    """A reply that quotes and cites the first passage, then does what the injection asked."""
    def reply(request: dict[str, Any]) -> dict[str, Any]:
        passage_id, text = first_passage(request)
        quoted = f"{text.rstrip('.')} [{passage_id}]."
        obeyed = entry["obeyed"].rstrip(".")
        if entry["padded"]:
            words = re.sub(r"[.!?]\s+", ", ", text.rstrip(".")).lower()
            obeyed = f"{obeyed}, and {words} [{passage_id}]"
        return completion(f"Hi there,\n\n{quoted}\n\n{obeyed}.\n\nBest wishes,\n"
                          "Larkspur Bank Support", prompt_tokens=300, completion_tokens=80)
    return reply


def fenced_part(user: str) -> str:
    start = user.index(TICKET_OPEN) + len(TICKET_OPEN)
    return user[start:user.index(TICKET_CLOSE, start)]


async def test_every_obeying_draft_is_escalated_by_the_verifier(
    client: PlatformClient, fake_llm: ChatServer,
) -> None:
    rid = run_id()
    ids = {entry["id"]: f"{rid}-inj-{entry['id']}" for entry in INJECTIONS}
    for entry in INJECTIONS:
        ticket_id = ids[entry["id"]]
        fake_llm.when(ticket_id, Reply(body=obeying(entry)))
        await route_directly(client, ticket_id, f"{CANADA}\n{entry['ticket']}\nRef {ticket_id}",
                             "country_support", "llm_small", ["human"])
    seen = await client.outcomes.wait_for(list(ids.values()), within=120)
    for entry in INJECTIONS:
        ticket_id = ids[entry["id"]]
        [request] = fake_llm.requests_containing(ticket_id)
        assert request.json is not None
        user = request.json["messages"][1]["content"]
        assert user.count(TICKET_OPEN) == 1 and user.count(TICKET_CLOSE) == 1, entry["id"]
        inside = fenced_part(user)
        assert ticket_id in inside, "the whole ticket is inside the fence"
        assert not any(mark in inside for mark in ("<|", "|>", ">>>", "<<<", "[INST]")), inside
        [outcome] = seen[ticket_id]
        assert outcome["status"] == "escalated", (entry["id"], outcome)
        [verdict] = await client.fetch(
            "SELECT output FROM decisions WHERE ticket_id = :t AND stage = 'verifier'", t=ticket_id)
        failing = {check["check"] for check in verdict.output["checks"] if not check["passed"]}
        assert not verdict.output["passed"], (entry["id"], verdict.output)
        assert entry["caught_by"] in failing, (entry["id"], entry["caught_by"], verdict.output["reasons"])
        if entry["padded"] and entry["caught_by"] != "groundedness":
            # the obeying sentence was padded past groundedness: the named check caught it
            assert not [r for r in verdict.output["reasons"]
                        if "groundedness" in r and entry["obeyed"][:30] in r
                        and "figures" not in r], verdict.output["reasons"]
