"""The agents' quality review through the console: `pinworks quality list|show|mark` act as the
agent of `pinworks login` through `/api/quality/reviews`, with the tickets' business-unit
scoping (another unit's review refused word for word, in the CLI and in the API); the verdict
lands in `quality_reviews` under the signed-in agent's name and feeds the unit's live
estimate; the API keeps the console's bearer, cookie and CSRF rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from pinworks_escalation.cli.quality_commands import NO_AGENT_OPTION

from .conftest import Platform, PlatformClient, cli, console_says, fresh_unit, signed_in_env
from .test_console import console_url, signed_in, unit_with_agent
from .test_quality import answered_automatically, estimate_of, eventually, sampled_reviews

pytestmark = pytest.mark.e2e


async def review_row(client: PlatformClient, review_id: int) -> Any:
    [row] = await client.fetch("SELECT status, correct_intent, reviewed_by FROM quality_reviews "
                               "WHERE id = :id", id=review_id)
    return tuple(row)


async def test_an_agent_marks_as_themselves_and_another_unit_is_refused_as_the_console_refuses(
        platform: Platform, client: PlatformClient, tmp_path: Path) -> None:
    rid, unit = fresh_unit("review")
    await answered_automatically(client, [f"{rid}-a", f"{rid}-b"], unit)
    ana = signed_in_env(platform, tmp_path, f"ana-{rid}", unit)
    cy = signed_in_env(platform, tmp_path, f"cy-{rid}", f"other-{rid}")
    first, second = await sampled_reviews(ana, unit, 2)
    one, two = str(first["id"]), str(second["id"])
    assert first["body"] == "How can I change the PIN on my card?" and first["answer"]

    listed = cli(cy, "quality", "list", "--status", "all", "--limit", "500", "--json")
    assert listed.returncode == 0, listed.stderr
    assert not {r["id"] for r in json.loads(listed.stdout)} & {first["id"], second["id"]}
    other_unit = cli(cy, "quality", "list", "--business-unit", unit, "--json")
    assert (other_unit.returncode, other_unit.stdout.strip()) == (0, "[]")
    for command, (method, path, body) in {
        ("show", one): ("GET", f"/api/quality/reviews/{one}", {}),
        ("mark", one, "wrong", "--intent", "card_arrival"): (
            "POST", f"/api/quality/reviews/{one}/mark",
            {"verdict": "wrong", "intent": "card_arrival"}),
        ("mark", one, "right"): ("POST", f"/api/quality/reviews/{one}/mark", {"verdict": "right"}),
    }.items():
        refused = cli(cy, "quality", *command)
        status, detail = console_says(platform, cy, method, path, **body)
        assert (status, detail) == (404, f"no quality review {one}")
        assert (refused.returncode, refused.stderr) == (1, f"error: {detail}\n"), command

    impersonating = cli(ana, "quality", "mark", one, "right", "--agent", "boss")
    assert (impersonating.returncode, impersonating.stderr) == (1, f"error: {NO_AGENT_OPTION}\n")
    typo = cli(ana, "quality", "mark", one, "wrong", "--intent", "card_arival")
    status, detail = console_says(platform, ana, "POST", f"/api/quality/reviews/{one}/mark",
                                  verdict="wrong", intent="card_arival")
    assert status == 422 and "card_arrival" in detail, detail
    assert (typo.returncode, typo.stderr) == (1, f"error: {detail}\n")
    no_intent = cli(ana, "quality", "mark", one, "wrong")
    assert (no_intent.returncode, no_intent.stderr) == (
        1, "error: a wrong answer needs the intent that was right\n")
    assert await review_row(client, first["id"]) == ("pending", None, None)

    marked = cli(ana, "quality", "mark", one, "wrong", "--intent", "card arrival")
    assert marked.returncode == 0, marked.stderr
    assert marked.stdout == (f"review {one} ({first['ticket_id']}) marked wrong by ana-{rid}: "
                             "right intent card_arrival\n")
    assert await review_row(client, first["id"]) == ("wrong", "card_arrival", f"ana-{rid}")
    again = cli(ana, "quality", "mark", one, "right")
    assert (again.returncode, again.stderr) == (
        1, f"error: quality review {one} was already marked wrong by ana-{rid}\n")
    assert console_says(platform, ana, "POST", f"/api/quality/reviews/{one}/mark",
                        verdict="right") == (409, again.stderr[len("error: "):-1])
    shown = cli(ana, "quality", "show", one)
    assert shown.returncode == 0 and "status: wrong\n" in shown.stdout
    assert f"reviewed_by: ana-{rid}\n" in shown.stdout
    right = cli(ana, "quality", "mark", two, "right")
    assert right.returncode == 0, right.stderr
    assert await review_row(client, second["id"]) == ("right", None, f"ana-{rid}")

    async def counted() -> tuple[int, int] | None:
        estimate = await estimate_of(client, unit)
        return estimate if estimate and estimate[0] == 2 else None

    assert await eventually(counted) == (2, 1), "one wrong of two judged, as the guard counts it"

    nobody = {**platform.env, "PINWORKS_AGENT_TOKEN_FILE": str(tmp_path / "nobody.token")}
    for command in (("list",), ("show", two), ("mark", two, "right")):
        refused = cli(nobody, "quality", *command)
        assert (refused.returncode, refused.stderr) == (
            1, "error: not signed in on this terminal: run `pinworks login`\n"), command


async def test_the_quality_api_keeps_the_consoles_sign_in_csrf_and_unit_scoping(
        platform: Platform, client: PlatformClient) -> None:
    rid, unit, agent = await unit_with_agent(platform, "reviewapi")
    _, _, outsider = await unit_with_agent(platform, "reviewapi-other")
    await answered_automatically(client, [f"{rid}-api"], unit)
    base = console_url(platform)
    async with httpx.AsyncClient(base_url=base, timeout=30) as anonymous:
        nobody = await anonymous.get("/api/quality/reviews")
        assert nobody.status_code == 401 and nobody.headers["www-authenticate"] == "Bearer"
        assert (await anonymous.post("/api/quality/reviews/1/mark",
                                     json={"verdict": "right"})).status_code == 401
    mine, theirs = await signed_in(platform, agent), await signed_in(platform, outsider)
    try:
        async def pending() -> list[dict[str, Any]]:
            answer = await mine.get("/api/quality/reviews", params={"business_unit": unit})
            assert answer.status_code == 200, answer.text
            return list(answer.json())

        [review] = await eventually(pending)
        assert review["intent_label"] and review["status"] == "pending"
        listed = await mine.get("/api/quality/reviews")
        assert review["id"] in {r["id"] for r in listed.json()}
        assert int(listed.headers["x-total-count"]) >= 1
        bad = await mine.get("/api/quality/reviews", params={"status": "maybe"})
        assert (bad.status_code, bad.json()["detail"]) == (
            422, "status is pending, right, wrong or all")

        path = f"/api/quality/reviews/{review['id']}"
        for answer in (await theirs.get(path),
                       await theirs.post(f"{path}/mark", json={"verdict": "right"})):
            assert (answer.status_code, answer.json()["detail"]) == (
                404, f"no quality review {review['id']}")
        elsewhere = await theirs.get("/api/quality/reviews", params={"business_unit": unit,
                                                                     "status": "all"})
        assert elsewhere.status_code == 200 and elsewhere.json() == []

        token = mine.headers.pop("X-CSRF-Token")
        no_csrf = await mine.post(f"{path}/mark", json={"verdict": "right"})
        assert (no_csrf.status_code, no_csrf.json()["detail"]) == (
            403, "missing or wrong CSRF token")
        foreign = await mine.post(f"{path}/mark", json={"verdict": "right"},
                                  headers={"X-CSRF-Token": token, "Origin": "http://evil.test"})
        assert (foreign.status_code, foreign.json()["detail"]) == (
            403, "cross-site request refused")
        with_intent = await mine.post(f"{path}/mark", json={"verdict": "right",
                                                            "intent": "card_arrival"},
                                      headers={"X-CSRF-Token": token})
        assert with_intent.status_code == 422
        assert await review_row(client, review["id"]) == ("pending", None, None)
        marked = await mine.post(f"{path}/mark", json={"verdict": "right"},
                                 headers={"X-CSRF-Token": token})
        assert marked.status_code == 200, marked.text
        assert (marked.json()["status"], marked.json()["reviewed_by"]) == ("right", agent)
        assert await review_row(client, review["id"]) == ("right", None, agent)
        shown = await mine.get(path)
        assert shown.json()["status"] == "right"
    finally:
        await mine.aclose()
        await theirs.aclose()
