"""The marketer and data-scientist console at ``/console``: server-rendered pages over the same
services, keys and roles as the JSON API.

* ``install_console(app)``: adds the pages (rules, try it, models, health), static files, error pages
  and the security headers every console response carries.
* ``ConsoleSessions``: sign-in sessions in Redis (the services own one).
"""

from __future__ import annotations

from serving.console.sessions import ConsoleSessions


def install_console(app) -> None:
    """Add the console to ``app`` (imported here: the services import the console's sessions module)."""
    from serving.console.routes import install_console as install

    install(app)


__all__ = ["ConsoleSessions", "install_console"]
