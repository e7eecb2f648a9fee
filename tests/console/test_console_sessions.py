"""Console sign-in is a server-side session: the cookie holds a random id, never the key; sessions end when idle,
when too old, on sign-out and when their key is revoked; every console response carries the security headers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from fastapi.testclient import TestClient

from engine.keys import key_sessions_key, session_key
from engine.settings import ConsoleSettings, Settings
from serving.auth import ApiKeys, digest_of
from serving.console.headers import CONTENT_SECURITY_POLICY
from serving.console.session import SESSION_COOKIE
from tests.helpers.clock import NOW
from tests.helpers.console import sign_in
from tests.helpers.http import serve
from tests.helpers.redis_dump import dump_redis
from tools.chaos import wait_for


@pytest.fixture
def client(console_settings: Settings, redis_client: redis.Redis) -> Iterator[TestClient]:
    """The console over an empty store with no models: sessions need neither (the shop and the registry's champions
    of the other console tests take seconds to load)."""
    with serve(console_settings, redis_client) as test_client:
        yield test_client


def signed_in_page(client: TestClient) -> int:
    return client.get("/console/rules", follow_redirects=False).status_code


def test_the_cookie_holds_a_random_session_id_and_redis_only_digests(client: TestClient, keys: ApiKeys,
                                                                      redis_client: redis.Redis) -> None:
    key = sign_in(client, keys, "marketer")
    session_id = client.cookies[SESSION_COOKIE]
    assert key not in session_id and len(session_id) >= 43
    stored = redis_client.get(session_key(digest_of(session_id)))
    record = json.loads(stored)
    assert record["key_digest"] == digest_of(key) and record["key_id"] == keys.verify(key).key_id
    everything = json.dumps(dump_redis(redis_client), default=str)
    assert key not in everything and session_id not in everything, "neither secret is kept in Redis"
    assert redis_client.pttl(session_key(digest_of(session_id))) <= 30 * 60_000


def test_forms_carry_the_sessions_random_token(client: TestClient, keys: ApiKeys) -> None:
    sign_in(client, keys, "marketer")
    first = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/console/rules").text).group(1)
    sign_in(client, keys, "marketer")
    second = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/console/rules").text).group(1)
    assert first != second, "each session has its own token (not one derived from the key)"
    stale = client.post("/console/rules/check", data={"file": "lapsed.yaml", "text": "id: x", "csrf": first})
    assert stale.status_code == 403 and "reload the page" in stale.text


def test_signing_out_ends_the_session_in_redis_not_only_the_cookie(client: TestClient, keys: ApiKeys,
                                                                   redis_client: redis.Redis) -> None:
    sign_in(client, keys, "marketer")
    copied = client.cookies[SESSION_COOKIE]
    assert client.post("/console/logout", follow_redirects=False).status_code == 303
    assert redis_client.get(session_key(digest_of(copied))) is None
    client.cookies.set(SESSION_COOKIE, copied, path="/console")  # someone kept a copy of the cookie
    assert signed_in_page(client) == 303


def test_a_session_ends_after_its_idle_timeout(client: TestClient, keys: ApiKeys, redis_client: redis.Redis) -> None:
    client.app.state.services.sessions.settings = ConsoleSettings(session_idle_minutes=0.02)  # 1.2 s
    sign_in(client, keys, "marketer")
    stored = session_key(digest_of(client.cookies[SESSION_COOKIE]))
    assert signed_in_page(client) == 200, "used within the timeout: it goes on"
    assert redis_client.pttl(stored) > 1000, "each use starts the idle timeout again"
    # Looking at the page would use the session; watch Redis instead until the idle timeout ends it.
    assert wait_for(lambda: not redis_client.exists(stored), 5, every=0.05), "still there after 5 s idle"
    assert signed_in_page(client) == 303


def test_a_session_ends_after_its_absolute_lifetime_even_when_used(client: TestClient, keys: ApiKeys) -> None:
    sessions = client.app.state.services.sessions
    moment = {"now": NOW}
    sessions.clock = lambda: moment["now"]
    sign_in(client, keys, "marketer")
    moment["now"] = NOW + timedelta(hours=11, minutes=59)
    assert signed_in_page(client) == 200
    moment["now"] = NOW + timedelta(hours=12)
    assert signed_in_page(client) == 303


def test_revoking_the_key_ends_its_sessions(client: TestClient, keys: ApiKeys, redis_client: redis.Redis) -> None:
    key = sign_in(client, keys, "marketer")
    key_id = keys.verify(key).key_id
    assert redis_client.scard(key_sessions_key(key_id)) == 1
    client.app.state.services.keys.revoke(key_id)
    assert redis_client.exists(key_sessions_key(key_id)) == 0
    assert signed_in_page(client) == 303
    refused = client.post("/console/login", data={"key": key})
    assert refused.status_code == 401


def test_the_cookie_is_secure_behind_https(client: TestClient, keys: ApiKeys) -> None:
    response = client.post("https://testserver/console/login", data={"key": keys.create("marketer")},
                           follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    plain = client.post("/console/login", data={"key": keys.create("marketer")}, follow_redirects=False)
    assert "Secure" not in plain.headers["set-cookie"]


def test_every_console_response_carries_the_security_headers(client: TestClient, keys: ApiKeys) -> None:
    responses = {"sign-in page": client.get("/console/login"),
                 "redirect to sign in": client.get("/console/rules", follow_redirects=False),
                 "stylesheet": client.get("/console/static/console.css"),
                 "unknown language": client.get("/console/lang/xx")}
    sign_in(client, keys, "marketer")
    responses.update({page: client.get(f"/console/{page}") for page in ("rules", "try", "models", "health")})
    for name, response in responses.items():
        headers = response.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, name
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert (headers["referrer-policy"], headers["x-frame-options"], headers["x-content-type-options"]) == (
            "no-referrer", "DENY", "nosniff"), name
        if name != "stylesheet":
            assert headers["cache-control"] == "no-store", name
    for page in ("rules", "try", "models", "health"):
        html = responses[page].text
        assert "<script" not in html and " style=" not in html and not re.search(r"\son[a-z]+=", html), page
    assert "content-security-policy" not in client.get("/healthz").headers, "the API is left as it was"
