"""The quality review page (`/quality`): the sampled automatic answers of the agent's business
units with what each customer wrote, and a form per pending review to mark it right or wrong
(with the intent that was right). The form runs like `POST /api/quality/reviews/{id}/mark`,
carries the session's CSRF token (`deps`) and redirects (303) back with a notice's or the
refusal's fixed code (`messages`)."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pinworks_contracts.intents import known_intents
from pinworks_escalation.console import quality_work
from pinworks_escalation.console.deps import ConsoleDep, PageAgent
from pinworks_escalation.console.messages import QUALITY_ERRORS, QUALITY_NOTICES, error, notice
from pinworks_escalation.console.work import Refusal
from pinworks_escalation.schemas import QualityVerdict

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
"""Reviews per page."""


@router.get("/quality", response_class=HTMLResponse)
async def quality_page(request: Request, agent: PageAgent, console: ConsoleDep,
                       status: str = "pending", unit: str = "", page: int = 1,
                       notice_code: Annotated[str | None, Query(alias="notice")] = None,
                       error_code: Annotated[str | None, Query(alias="error")] = None
                       ) -> HTMLResponse:
    """The reviews of the agent's units (pending first by default); a filter that makes no
    sense falls back to the pending reviews of every unit of theirs, with a message."""
    problem = None
    number = max(page, 1)
    try:
        reviews, total = await quality_work.review_page(
            console, agent, status=status, business_unit=unit or None, limit=PAGE_SIZE,
            offset=(number - 1) * PAGE_SIZE)
    except Refusal as refused:
        problem, status, unit, number = refused.code, "pending", "", 1
        reviews, total = await quality_work.review_page(console, agent, limit=PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    kept = {k: v for k, v in {"status": status, "unit": unit}.items() if v}
    return console.page(
        request, "quality.html", agent=agent, reviews=reviews, total=total, status=status,
        unit=unit, statuses=quality_work.STATUSES, intents=known_intents(),
        page_number=number, pages=pages,
        page_link=lambda n: "/quality?" + urlencode({**kept, "page": n}),
        notice=notice(notice_code, QUALITY_NOTICES),
        error=error(error_code or problem, QUALITY_ERRORS))


@router.post("/quality/{review_id}/mark")
async def mark_form(review_id: int, agent: PageAgent, console: ConsoleDep,
                    verdict: Annotated[str, Form()],
                    intent: Annotated[str, Form()] = "") -> Response:
    """Mark as the signed-in agent; the intent counts only for a wrong verdict (the form's
    intent box stays filled in whichever button is pressed)."""
    try:
        if verdict not in ("right", "wrong"):
            raise Refusal(422, "the verdict is right or wrong", "refused")
        wrong = verdict == "wrong"
        await quality_work.mark(console, agent, review_id, QualityVerdict(
            verdict="wrong" if wrong else "right", intent=(intent.strip() or None) if wrong
            else None))
    except HTTPException as refused:
        code = refused.code if isinstance(refused, Refusal) else "refused"
        return RedirectResponse(f"/quality?error={code}", status_code=303)
    return RedirectResponse(f"/quality?notice=marked_{verdict}", status_code=303)
