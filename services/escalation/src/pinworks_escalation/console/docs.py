"""The API's documentation behind sign-in: `/openapi.json` for a signed-in agent (cookie or
bearer token), `/docs` a page of Swagger UI served from the console itself (the
swagger-ui-bundle-v2 package's files under `/static/swagger-ui/`, no CDN: it works offline)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pinworks_escalation.console.deps import ApiAgent, ConsoleDep, PageAgent

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request, _: ApiAgent) -> dict[str, Any]:
    return request.app.openapi()  # type: ignore[no-any-return]


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request, agent: PageAgent, console: ConsoleDep) -> HTMLResponse:
    return console.page(request, "docs.html", agent=agent)
