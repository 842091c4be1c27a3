"""The quality review in the console's JSON API (`/api/quality/reviews`): the same sign-in
(session cookie with CSRF token, or bearer token) and the same business-unit scoping as the
tickets: another unit's review answers 404 `no quality review N`, like one that does not exist."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from pinworks_escalation.console import quality_work
from pinworks_escalation.console.deps import ApiAgent, ConsoleDep
from pinworks_escalation.schemas import QualityReview, QualityVerdict

router = APIRouter(tags=["quality"])

NOT_YOURS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such review in the agent's business units"}}


@router.get("/api/quality/reviews", response_model=list[QualityReview])
async def api_reviews(agent: ApiAgent, response: Response, console: ConsoleDep,
                      status: str = "pending", business_unit: str | None = None,
                      limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Automatic answers in the quality review of the agent's business units (of
    `business_unit` only, when it is one of them), oldest first; `status` is pending (the
    default), right, wrong or all. `X-Total-Count` says how many match across all pages."""
    reviews, total = await quality_work.review_page(
        console, agent, status=status, business_unit=business_unit, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return reviews


@router.get("/api/quality/reviews/{review_id}", response_model=QualityReview,
            responses=NOT_YOURS)
async def api_review(review_id: int, agent: ApiAgent, console: ConsoleDep) -> dict[str, Any]:
    """One review: the customer's message, the automatic answer, its intent and handler, and
    the verdict once there is one."""
    return await quality_work.one_review(console, agent, review_id)


@router.post("/api/quality/reviews/{review_id}/mark", response_model=QualityReview,
             responses={**NOT_YOURS, 409: {"description": "already marked"},
                        422: {"description": "wrong without a known intent, or right with one"}})
async def api_mark(review_id: int, body: QualityVerdict, agent: ApiAgent,
                   console: ConsoleDep) -> dict[str, Any]:
    """Mark the automatic answer right, or wrong with the intent that was right, as the
    signed-in agent; the verdict feeds the unit's live wrong-answer estimate."""
    return await quality_work.mark(console, agent, review_id, body)
