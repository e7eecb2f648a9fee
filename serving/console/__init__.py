"""The marketer and data-scientist console at ``/console``: server-rendered pages over the same
services, keys and roles as the JSON API.

* ``install_console(app)``: adds the pages (rules, try it, models, health), static files and error pages.
"""

from serving.console.routes import install_console

__all__ = ["install_console"]
