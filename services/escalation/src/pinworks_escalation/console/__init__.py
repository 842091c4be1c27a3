"""The agents' console and REST API, served by the escalation service in its own event loop.

Server-rendered pages (Jinja2, no front-end build) and a JSON API under `/api` (OpenAPI at
`/openapi.json`, docs at `/docs`) share one rule: an agent sees and acts only on tickets of
the business units listed for them in the `agents` table. A ticket of another unit answers
404, exactly like a ticket that does not exist.

- `app`: the composition (`create_console`); `server`: serving it inside the service;
- `deps`: who is asking (session cookie, bearer token) and the console of a request;
- `work`: reading the queue in the agent's scope and the agents' actions, shared by
- `api` (the JSON routes), `pages` (the HTML pages) and `forms` (the ticket page's forms);
- `quality_work`, `quality_api`, `quality_pages`: the quality review of automatic answers (the
  same scoping: another unit's review is 404), in the API and on its page;
- `formatting`: the templates and their filters, safe sign-in redirects.
"""

from pinworks_escalation.console.app import create_console
from pinworks_escalation.console.server import ConsoleServer

__all__ = ["ConsoleServer", "create_console"]
