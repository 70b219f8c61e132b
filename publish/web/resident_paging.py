"""The ``page`` parameter of the agenda's home page (``/?page=N``), checked before the page runs.

A fresh user tried ``/?page=-1`` and ``/?page=abc``: both showed page 1, as if the address
were right. A page number is now a whole number written with the digits 0-9, from 1 (an empty
``page=`` is page 1, as a form may send it); anything else — a negative number, 0, a word,
``+2``, ``2.5``, more than :data:`MAX_DIGITS` digits — is answered with 400 and the resident
layout's « Numéro de page invalide » page in the visitor's language (French first), which
links to the first page of the same selection (theme, quartier, week … kept).

A number past the last page of the week is a page that does not exist: the home page answers it
with its « Page N : il n'y a que M pages » message and a link to the last page, with status
404 (see ``publish/web/resident.py``'s ``home``). Not a redirect: the visitor who followed an
old link learns that the week has fewer pages now, instead of landing elsewhere unawares.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from datasette.utils.asgi import Response

#: Longer page numbers are refused: Python reads at most 4 300 digits, and no week has
#: 10^18 pages.
MAX_DIGITS = 18
PARAMETER = "page"


class BadPageNumber(ValueError):
    """The ``page`` parameter is not a page number (the text given is ``args[0]``)."""


def requested_page(value: str | None) -> int:
    """The page number asked by ``?page=`` (``None`` or empty: 1).

    Raises:
        BadPageNumber: ``value`` is not 1 to 10^18 - 1 written in ASCII digits (negative,
            zero, a word, a sign, a decimal point, spaces).
    """
    if value is None or value == "":
        return 1
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_DIGITS or int(value) < 1:
        raise BadPageNumber(value)
    return int(value)


def bad_page(datasette: Any, request: Any, value: str) -> Response:
    """The 400 answer to ``?page=<value>``: « Numéro de page invalide » in the visitor's
    language, with a link to the first page of the same selection."""
    from publish.web import resident  # here: resident imports the whole page machinery
    from publish.web.not_found import bad_request

    page = resident.Page(datasette, request)
    shown = value if len(value) <= 20 else value[:20] + "…"
    kept = [(k, v) for k, v in parse_qsl(request.query_string, keep_blank_values=True)
            if k != PARAMETER]
    return bad_request(
        page, page._("Numéro de page invalide"),
        page._("« %(value)s » n'est pas un numéro de page : les pages de l'agenda sont "
               "numérotées 1, 2, 3…") % {"value": shown},
        page.url(request.path, kept), page._("Aller à la première page"))


View = Callable[[Any, Any], Awaitable[Response]]


def checked(view: View) -> View:
    """``view`` (a paged resident route) preceded by the check of its ``page`` parameter:
    a bad value gets :func:`bad_page`, a good one reaches ``view`` unchanged."""
    async def guarded(datasette: Any, request: Any) -> Response:
        value = request.args.get(PARAMETER)
        try:
            requested_page(value)
        except BadPageNumber:
            return bad_page(datasette, request, value or "")
        return await view(datasette, request)
    # not functools.wraps: Datasette reads the signature to pass (datasette, request)
    guarded.__name__, guarded.__doc__ = view.__name__, view.__doc__
    guarded.__qualname__ = view.__qualname__
    return guarded


def check_pages(routes: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``routes`` with the paged resident views (the home page, ``^/$``) behind
    :func:`checked`; every other route unchanged."""
    from publish.web import resident

    return [(pattern, checked(view) if view is resident.home else view)
            for pattern, view in routes]
