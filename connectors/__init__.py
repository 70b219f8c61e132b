"""Connectors: fetch a source and parse its format into source records."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.base import ParseResult

# format → (module, function); imported on first use, so that a run whose sources all answer
# "not modified" never loads the parsing libraries.
PARSERS: dict[str, tuple[str, str]] = {
    "ical": ("connectors.ical", "parse_ical"),
    "rss": ("connectors.feeds", "parse_feed"),
    "atom": ("connectors.feeds", "parse_feed"),
    "openagenda": ("connectors.openagenda", "parse_openagenda"),
    "datainclusion": ("connectors.datainclusion", "parse_datainclusion"),
}


def parser_for(fmt: str) -> Callable[[bytes, str], ParseResult]:
    """The parse function for a registry ``format``.

    Raises:
        KeyError: unknown format.
    """
    module, function = PARSERS[fmt]
    parser: Callable[[bytes, str], ParseResult] = getattr(import_module(module), function)
    return parser
