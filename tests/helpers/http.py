"""Talking to the API as a client does."""

from __future__ import annotations


def bearer(key: str) -> dict[str, str]:
    """The header that presents an API key."""
    return {"Authorization": f"Bearer {key}"}
