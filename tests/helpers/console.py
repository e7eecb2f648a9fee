"""The console as a browser uses it: signing in with a key, the form token a page carries."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from serving.auth import ApiKeys

NEW_MEMBER = "C-NEW-1"
"""Registered, never bought: the shipped new-member rule offers NEW5 at a checkout of 20 yuan or more."""


def sign_in(client: TestClient, keys: ApiKeys, role: str) -> str:
    """Sign the test client in with a new key of ``role``; returns the key."""
    key = keys.create(role)
    response = client.post("/console/login", data={"key": key, "next": "/console/rules"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return key


def form_token(client: TestClient, page: str = "/console/rules") -> str:
    """The form token a page carries (what the browser would post back)."""
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(page).text)
    assert match, f"{page} has no form token"
    return match.group(1)
