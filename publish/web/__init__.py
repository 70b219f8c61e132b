"""Our Datasette plugin: extra routes and templates served by the same instance.

Each feature lives in its own module that exposes ``ROUTES``, a list of ``(regex, view)`` pairs
as Datasette's ``register_routes`` hook expects (https://docs.datasette.io/en/0.65/plugin_hooks.html).
Add a module to ``FEATURE_MODULES`` to register its routes.
"""

from __future__ import annotations

import importlib
from typing import Any

from datasette import hookimpl

from publish.web.reload import startup  # noqa: F401  (hook: follow republished files)

FEATURE_MODULES: list[str] = ["publish.web.resident", "publish.web.registration",
                              "publish.web.exports", "publish.web.embed",
                              "publish.web.moderation", "publish.web.status"]


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    """Collect the routes of every feature module."""
    routes: list[tuple[str, Any]] = []
    for name in FEATURE_MODULES:
        module = importlib.import_module(name)
        routes.extend(getattr(module, "ROUTES", []))
    return routes
