"""Ordinary « not found » answers: a Tissu page, and no traceback in the server's log.

Datasette 0.65 answers an unknown address (``/foo``, ``/wp-login.db``, ``/tissu-open/nexiste``)
by raising ``NotFound`` or ``DatasetteError(..., status=404)`` and passing it to the
``handle_exception`` plugin hook (https://docs.datasette.io/en/0.65/plugin_hooks.html
#handle-exception-datasette-request-exception). Its own implementation of that hook
(``datasette/handle_exception.py``) prints the exception with ``rich`` and its local variables
(165–184 lines for each 404) before rendering its English « Error 404 » page, and Datasette
awaits every implementation's answer even when an earlier one has answered. A bot scanning
the site therefore filled the log.

:func:`handle_exception` wraps that hook (a pluggy ``wrapper``): for a 404 it replaces the
answers of the implementations (not yet run: they are closures Datasette awaits later) with
Tissu's own page, the resident layout's « Page introuvable » in the visitor's language
(``?lang=``, the ``tissu_lang`` cookie, French) with a link home; an address ending in
``.json`` gets Datasette's JSON error body (``{"ok": false, "error", "status", "title"}``)
instead. One line goes to the ``tissu.web`` logger at ``INFO``. Every other exception (a 500,
a 400 such as a bad ``_sort``) is left to Datasette as before, traceback included, and so is a
404 whose Tissu page could not be rendered (logged with its traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from datasette import hookimpl
from datasette.utils import add_cors_headers
from datasette.utils.asgi import NotFound, Response
from datasette.views.base import DatasetteError

LOG = logging.getLogger("tissu.web")


def is_not_found(exception: BaseException) -> bool:
    """True for an ordinary « not found »: Datasette's ``NotFound`` or a ``DatasetteError`` with
    status 404 (unknown database, table, row). Anything else is a real error."""
    if isinstance(exception, NotFound):
        return True
    return isinstance(exception, DatasetteError) and getattr(exception, "status", None) == 404


def _message(exception: BaseException) -> str:
    if isinstance(exception, DatasetteError):
        return str(exception.message)
    return str(exception.args[0]) if exception.args else "Not found"


def not_found_response(datasette: Any, request: Any, exception: BaseException) -> Response:
    """The 404 answer for ``request``: JSON for a ``….json`` address (as Datasette's), else
    the resident « Page introuvable » page in the visitor's language."""
    if request.path.split("?")[0].endswith(".json"):
        headers: dict[str, str] = {}
        if datasette.cors:
            add_cors_headers(headers)
        title = exception.title if isinstance(exception, DatasetteError) else None
        return Response.json({"ok": False, "error": _message(exception), "status": 404,
                              "title": title}, status=404, headers=headers)
    from publish.web import resident  # here: resident imports the whole page machinery

    page = resident.Page(datasette, request)
    response = resident.unknown_address(page)
    response.headers["Cache-Control"] = "no-store"
    return response


@hookimpl(wrapper=True)
def handle_exception(datasette: Any, request: Any,
                     exception: BaseException) -> Generator[None, list[Any], list[Any]]:
    """Answer an ordinary « not found » ourselves, silently (see the module's docstring);
    returns the list of answers Datasette awaits, the first being used."""
    answers = yield
    if not is_not_found(exception):
        return answers
    LOG.info("404 %s %s", request.method, request.path)
    try:
        return [not_found_response(datasette, request, exception)]
    except Exception:  # our page failed: say so, and let Datasette answer as before
        LOG.exception("page 404 de Tissu impossible pour %s", request.path)
        return answers
