"""Our Datasette plugin: extra routes and templates served by the same instance.

Each feature lives in its own module that exposes ``ROUTES``, a list of ``(regex, view)`` pairs
as Datasette's ``register_routes`` hook expects (https://docs.datasette.io/en/0.65/plugin_hooks.html).
Add a module to ``FEATURE_MODULES`` to register its routes.
"""

from __future__ import annotations

import importlib
from typing import Any

from datasette import hookimpl

from publish.web import not_found, reload, resident_paging, serving, table_cache

FEATURE_MODULES: list[str] = ["publish.web.resident", "publish.web.registration",
                              "publish.web.exports", "publish.web.embed",
                              "publish.web.moderation", "publish.web.status"]


@hookimpl
def startup(datasette: Any) -> None:
    """Follow republished files (publish/web/reload.py) and set the serving defaults
    (publish/web/serving.py)."""
    reload.startup(datasette)
    serving.apply_serving_settings(datasette)


@hookimpl
def asgi_wrapper(datasette: Any) -> Any:
    """Serve Datasette's table pages of the immutable published file again from memory
    (publish/web/table_cache.py)."""
    return table_cache.wrap(datasette)


#: Ordinary 404s: Tissu's page (or JSON), without Datasette's traceback in the log
#: (publish/web/not_found.py).
handle_exception = not_found.handle_exception


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    """Collect the routes of every feature module; the home page's ``?page=`` is checked first
    (publish/web/resident_paging.py: 400 for a value that is no page number)."""
    routes: list[tuple[str, Any]] = []
    for name in FEATURE_MODULES:
        module = importlib.import_module(name)
        routes.extend(getattr(module, "ROUTES", []))
    return resident_paging.check_pages(routes)
