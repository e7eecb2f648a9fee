"""Shared pieces of the ``nbo`` commands: the console, settings and the feature store."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True)


def settings():
    """The settings from the environment."""
    from engine.settings import get_settings

    return get_settings()


def feature_store():
    """A feature store on the configured Redis (embedded if REDIS_URL is unset)."""
    from engine.clock import clock_from_settings
    from engine.feature_store import FeatureStore
    from engine.programme import Programme
    from engine.redis_server import connect

    current = settings()
    return FeatureStore(connect(current), Programme.from_settings(current), clock=clock_from_settings(current))
