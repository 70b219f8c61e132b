"""Datasette settings for serving a large published file to many visitors at once.

Datasette's table pages suggest facets by trying a GROUP BY on each column and count facet
values for up to ``facet_time_limit_ms`` each (https://docs.datasette.io/en/0.65/settings.html).
On 100k events, a full-text search page (``/tissu-open/events?_search=…``) spent seconds in
those queries (BENCHMARKS.md, W3). At start-up, while they still have Datasette's default
value, Tissu turns facet suggestions off and gives each facet at most
``FACET_TIME_LIMIT_MS``; the configured facets (publish/metadata.py) are still counted when
they fit in that time. A value given with ``datasette --setting`` other than Datasette's
default is kept.
"""

from __future__ import annotations

from typing import Any

FACET_TIME_LIMIT_MS = 100
#: Setting → value used by Tissu when Datasette's default is in force.
SERVING_SETTINGS: dict[str, object] = {"suggest_facets": False,
                                       "facet_time_limit_ms": FACET_TIME_LIMIT_MS}


def apply_serving_settings(datasette: Any) -> dict[str, object]:
    """Set :data:`SERVING_SETTINGS` on ``datasette`` where Datasette's default is in force.

    Returns the settings changed ({name: new value}).
    """
    from datasette.app import DEFAULT_SETTINGS  # here: datasette.app imports this plugin

    changed: dict[str, object] = {}
    settings = datasette._settings  # Datasette 0.65 keeps its settings in this dict
    for name, value in SERVING_SETTINGS.items():
        if settings.get(name) == DEFAULT_SETTINGS.get(name) and settings.get(name) != value:
            settings[name] = value
            changed[name] = value
    return changed
