"""Ordinary « not found » and « bad request » answers: a Tissu page, and no traceback in the
server's log.

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
instead. One line goes to the ``tissu.web`` logger at ``INFO``.

A table sorted by a column it cannot be sorted by (``/tissu-open/events?_sort=nope``,
``_sort_desc=nope``, or both ``_sort`` and ``_sort_desc``) made Datasette raise a
``DatasetteError`` of status 500: an error page and a traceback in the log for a typing
mistake in an address. It gets a 400 instead (:func:`is_bad_sort`): the resident layout's
« Tri impossible » page in the visitor's language (French first), which says which column
and links to the same table unsorted; JSON for a ``….json`` address, its ``error`` in French.

Every other exception (a 500, Datasette's other 400s) is left to Datasette as before, traceback
included, and so is an answer whose Tissu page could not be rendered (logged with its
traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qsl, urlencode

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


#: Datasette 0.65's messages for a sort it refuses (datasette/views/table.py), raised with
#: status 500.
_BAD_SORT = "Cannot sort table by "
_BOTH_SORTS = "Cannot use _sort and _sort_desc at the same time"


def is_bad_sort(exception: BaseException) -> bool:
    """True when Datasette refused the ``_sort`` or ``_sort_desc`` of a table address: a
    column that does not exist or cannot be sorted by, or both parameters at once."""
    if not isinstance(exception, DatasetteError):
        return False
    message = str(exception.message)
    return message.startswith(_BAD_SORT) or message == _BOTH_SORTS


def bad_request(page: Any, title: str, message: str, back_url: str, back_label: str,
                status: int = 400) -> Response:
    """A « bad request » page (400) in the resident layout: ``title``, ``message`` and one
    link back, already in the page's language; never cached (``no-store``).

    ``page`` is a :class:`publish.web.resident.Page`.
    """
    response = page.render("bad_request.html", page.context(
        "", title=title, message=message, back_url=back_url, back_label=back_label),
        status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def bad_sort_response(datasette: Any, request: Any, exception: BaseException) -> Response:
    """The 400 answer to a refused sort (:func:`is_bad_sort`): JSON for a ``….json`` address
    (Datasette's error body, ``error`` and ``title`` in the visitor's language), plain text
    for a ``….csv`` one (a spreadsheet or a script asked for data, not a page), else the
    « Tri impossible » page with a link to the same address without ``_sort``/``_sort_desc``."""
    from publish.web import resident  # here: resident imports the whole page machinery

    page = resident.Page(datasette, request)
    column = request.args.get("_sort") or request.args.get("_sort_desc") or ""
    title = page._("Tri impossible")
    if str(getattr(exception, "message", "")) == _BOTH_SORTS:
        message = page._("Un seul tri à la fois : _sort (ordre croissant) ou _sort_desc "
                         "(ordre décroissant), pas les deux.")
    else:
        message = page._("Impossible de trier par « %(column)s » : cette colonne n'existe pas "
                         "dans cette table ou ne peut pas servir au tri. Choisissez une "
                         "colonne dans l'en-tête du tableau.") % {"column": column[:80]}
    if request.path.split("?")[0].endswith(".json"):
        headers: dict[str, str] = {"Cache-Control": "no-store"}
        if datasette.cors:
            add_cors_headers(headers)
        return Response.json({"ok": False, "error": message, "status": 400, "title": title},
                             status=400, headers=headers)
    if request.path.split("?")[0].endswith(".csv"):
        return Response.text(f"{title} : {message}\n", status=400,
                             headers={"Cache-Control": "no-store"})
    kept = [(k, v) for k, v in parse_qsl(request.query_string, keep_blank_values=True)
            if k not in ("_sort", "_sort_desc")]
    back = request.path + ("?" + urlencode(kept) if kept else "")
    return bad_request(page, title, message, back, page._("Afficher la table sans ce tri"))


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
    """Answer an ordinary « not found » or a refused sort ourselves, silently (see the module's
    docstring); returns the list of answers Datasette awaits, the first being used."""
    answers = yield
    if is_not_found(exception):
        status, answer = 404, not_found_response
    elif is_bad_sort(exception):
        status, answer = 400, bad_sort_response
    else:
        return answers
    LOG.info("%d %s %s", status, request.method, request.path)
    try:
        return [answer(datasette, request, exception)]
    except Exception:  # our page failed: say so, and let Datasette answer as before
        LOG.exception("page %d de Tissu impossible pour %s", status, request.path)
        return answers
