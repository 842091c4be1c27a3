"""The console's composition: one FastAPI application with the JSON API, the pages, the forms
and the API docs (all behind sign-in), its static assets, and the security middleware
(headers, cross-site refusal), sharing one `Console` (database, settings, templates)."""

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine
from swagger_ui_bundle import swagger_ui_path

from pinworks_escalation.console import answers, api, docs, forms, pages, quality_api, quality_pages
from pinworks_escalation.console.deps import Unauthenticated
from pinworks_escalation.console.formatting import STATIC, page_templates
from pinworks_escalation.console.security import SecurityMiddleware
from pinworks_escalation.console.work import Console
from pinworks_escalation.settings import EscalationSettings

log = logging.getLogger("pinworks.escalation.console")


def create_console(engine: AsyncEngine, settings: EscalationSettings) -> FastAPI:
    app = FastAPI(
        docs_url=None, redoc_url=None, openapi_url=None,  # served behind sign-in by `docs`
        title="pinworks escalation console",
        version="0.1.0",
        description="The human queue: agents see only the tickets of their business units. "
        "Authenticate with the session cookie from `POST /api/session` (state-changing calls "
        "then send its `csrf_token` as `X-CSRF-Token`) or with `Authorization: Bearer` and a "
        "token from `POST /api/tokens`.",
    )
    app.state.console = Console(engine, settings, page_templates())
    app.add_exception_handler(Unauthenticated, to_login)
    app.include_router(api.router)
    app.include_router(quality_api.router)
    app.include_router(pages.router)
    app.include_router(forms.router)
    app.include_router(answers.router)
    app.include_router(quality_pages.router)
    app.include_router(docs.router)
    app.mount("/static/swagger-ui", StaticFiles(directory=str(swagger_ui_path)),
              name="swagger-ui")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(SecurityMiddleware, trusted_origins=[
        o for o in settings.trusted_origins.split(",") if o.strip()], hsts=settings.hsts)
    return app


async def to_login(request: Request, _: Exception) -> Response:
    """A page without a session sends the agent to sign in (and back); a fragment answers 401."""
    if request.url.path.startswith("/fragments/"):
        return Response(status_code=401)
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
