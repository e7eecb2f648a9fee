"""Every route of the OpenAPI schema, fuzzed with schemathesis: never a 5xx.

Each route is called with a key of the least privileged role that may call it (open routes with
none); separately, no key, an unknown key and every role that may not call it get 401 / 403, never
a 5xx, whatever the input. The permission of a route is read from its ``require(...)`` dependency,
so a new route is covered without editing this file.

Operations are driven through hypothesis directly: schemathesis' pytest plugin does not run on
pytest 9 (it reads a private attribute pytest removed).
"""

from __future__ import annotations

import pytest
import redis
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from engine.settings import RateLimitSettings, Settings
from serving.app import create_app
from serving.auth import PERMISSIONS, ROLES, ApiKeys
from serving.services import Services
from tests.helpers.clock import NOW
from tests.helpers.fuzz import fuzz_settings
from training.champions import ChampionModels

pytestmark = pytest.mark.fuzz


def _permission(dependant) -> str | None:
    for dependency in dependant.dependencies:
        found = getattr(dependency.call, "permission", None) or _permission(dependency)
        if found:
            return found
    return None


def _api_routes(routes):
    # FastAPI 0.165 keeps an included router as one entry of app.routes holding the original router.
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(included.routes)


def _operations() -> tuple[list, dict[tuple[str, str], str | None]]:
    # From the app's schema document, not from_asgi: that would run the app's lifespan with the
    # default settings (an embedded Redis and an MLflow store in the working tree).
    app = create_app(Settings(_env_file=None, pii_key="schema"), background=False)
    schema = schemathesis.openapi.from_dict(app.openapi())
    permissions = {(method, route.path): _permission(route.dependant)
                   for route in _api_routes(app.routes) for method in route.methods}
    return [result.ok() for result in schema.get_all_operations()], permissions


OPERATIONS, ROUTE_PERMISSIONS = _operations()


def permission_of(operation) -> str | None:
    """The permission the route checks (None: open to anyone)."""
    return ROUTE_PERMISSIONS[(operation.method.upper(), operation.path)]


def least_role(permission: str) -> str:
    """The least privileged role that has the permission (roles are listed from least to most)."""
    return next(role for role in ROLES if role in PERMISSIONS[permission])


PROTECTED = [op for op in OPERATIONS if permission_of(op)]


@pytest.fixture
def api(settings: Settings, redis_client: redis.Redis, churn_result, recommender_result):
    """The app, ready (real small models), with its services built directly (schemathesis runs no lifespan)."""
    models = ChampionModels.from_models(churn=churn_result.model, recommender=recommender_result.model)
    # Rate limits off: hundreds of cases a second would be 429s before their input is looked at
    # (tests/serving/test_rate_limits.py covers the limits).
    settings = settings.model_copy(update={"rate_limits": RateLimitSettings(enabled=False)})
    app = create_app(settings, redis_client=redis_client, clock=lambda: NOW, background=False, models=models)
    app.state.services = Services.build(settings, redis_client, clock=lambda: NOW, models=models)
    keys = {role: ApiKeys(redis_client).create(role) for role in ROLES}
    app.state.services.store.ingest([
        {"event_id": "r", "type": "register", "member_id": "A", "ts": "2026-01-05T10:00:00", "store_id": "S001"},
    ])
    return app, keys


def test_every_api_route_says_who_may_call_it() -> None:
    """Only health and metrics are open; a route without require(...) would be open by mistake."""
    open_routes = sorted(op.path for op in OPERATIONS if not permission_of(op))
    assert open_routes == ["/healthz", "/metrics", "/readyz"]
    assert {permission_of(op) for op in PROTECTED} <= set(PERMISSIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_no_input_makes_a_server_error(operation, mode, api) -> None:
    app, keys = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    live = schema[operation.path][operation.method.upper()]
    permission = permission_of(operation)
    headers = {"Authorization": f"Bearer {keys[least_role(permission)]}"} if permission else {}

    @given(case=live.as_strategy(generation_mode=mode))
    @fuzz_settings(40)
    def check(case) -> None:
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.path, case.body, response.text)
        if permission and mode == GenerationMode.POSITIVE:
            assert response.status_code not in (401, 403) or "scope" in response.text, response.text

    try:
        check()
    except Unsatisfiable:
        pytest.skip("this operation takes no input that could be invalid")


@pytest.mark.parametrize("operation", PROTECTED, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_no_key_an_unknown_key_and_other_roles_are_refused(operation, api) -> None:
    app, keys = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    live = schema[operation.path][operation.method.upper()]
    permission = permission_of(operation)
    refused_roles = [role for role in ROLES if role not in PERMISSIONS[permission]]

    @given(case=live.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @fuzz_settings(5)
    def check(case) -> None:
        assert case.call().status_code == 401
        assert case.call(headers={"Authorization": "Bearer nbo_not_a_key"}).status_code == 401
        for role in refused_roles:
            response = case.call(headers={"Authorization": f"Bearer {keys[role]}"})
            assert response.status_code == 403 and repr(role) in response.json()["detail"], (role, response.text)

    check()


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/next-best-offer", '{"request_id": "r", "member_id": "A", "store_id": "S001", "channel": "pos", '
                            '"basket": [{"sku": "a", "qty": NaN, "price": Infinity}]}'),
    ("/v1/coupons/0000000000000000/redeem", '{"member_id": "A", "store_id": -Infinity}'),
    ("/v1/next-best-offer", '{"request_id": -9223372036854775809, "member_id": [18446744073709551616]}'),
    ("/v1/events", '[{"event_id": "e", "type": "checkin", "member_id": "A", "ts": NaN}]'),
    ("/v1/events", "[" * 100_000 + "]" * 100_000),
    ("/v1/events", '[{"event_id": "e", "type": "checkin", "member_id": "A", "ts": "2026-01-01", "x": "'
                   + "y" * 5_000_000 + '"}]'),
    ("/v1/events", "[" + ",".join(["{}"] * 5001) + "]"),
    ("/v1/events", b"\xff\xfe[]"),
    ("/v1/admin/keys", '{"role": "pos", "expires_in_days": NaN, "scope": "store:' + "S" * 100_000 + '"}'),
    ("/v1/admin/keys/0123456789ab/rotate", '{"grace_seconds": 1e400}'),
], ids=["nan-and-inf", "minus-inf", "past-64-bit-integers", "nan-in-an-event", "nested-100k-deep", "5-MB-field", "5001-events",
        "not-utf-8", "new-key-nan-and-a-huge-scope", "rotate-grace-past-a-float"])
def test_bodies_schemathesis_cannot_make_get_a_4xx_that_says_why(path: str, body: str | bytes, api) -> None:
    """Python's JSON parser accepts NaN and Infinity (not JSON): they must be refused, not crash the answer."""
    from fastapi.testclient import TestClient

    app, keys = api
    response = TestClient(app).post(path, content=body, headers={
        "Authorization": f"Bearer {keys['admin']}", "content-type": "application/json"})
    assert 400 <= response.status_code < 500 or (
        path == "/v1/events" and response.status_code == 200 and response.json()["rejected"]), response.text[:300]
    assert response.json()["detail" if response.status_code != 200 else "rejected"]
