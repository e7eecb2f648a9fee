"""Every route of the OpenAPI schema, fuzzed with schemathesis (with a valid key): never a 5xx.

Operations are driven through hypothesis directly: schemathesis' pytest plugin does not run on
pytest 9 (it reads a private attribute pytest removed).
"""

from __future__ import annotations

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from engine.settings import Settings
from serving.app import create_app
from serving.auth import ApiKeys
from serving.services import Services
from tests.conftest import NOW
from training.champions import ChampionModels


def _operations() -> list:
    # From the app's schema document, not from_asgi: that would run the app's lifespan with the
    # default settings (an embedded Redis and an MLflow store in the working tree).
    app = create_app(Settings(_env_file=None, pii_key="schema"), background=False)
    schema = schemathesis.openapi.from_dict(app.openapi())
    return [result.ok() for result in schema.get_all_operations()]


OPERATIONS = _operations()


@pytest.fixture
def api(settings: Settings, redis_client: redis.Redis, churn_result, recommender_result):
    """The app, ready (real small models), with its services built directly (schemathesis runs no lifespan)."""
    models = ChampionModels.from_models(churn=churn_result.model, recommender=recommender_result.model)
    app = create_app(settings, redis_client=redis_client, clock=lambda: NOW, background=False, models=models)
    app.state.services = Services.build(settings, redis_client, clock=lambda: NOW, models=models)
    key = ApiKeys(redis_client).create("admin")
    app.state.services.store.ingest([
        {"event_id": "r", "type": "register", "member_id": "A", "ts": "2026-01-05T10:00:00", "store_id": "S001"},
    ])
    return app, key


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_no_input_makes_a_server_error(operation, mode, api) -> None:
    app, key = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    live = schema[operation.path][operation.method.upper()]

    @given(case=live.as_strategy(generation_mode=mode))
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {key}"})
        assert response.status_code < 500, (case.path, case.body, response.text)

    try:
        check()
    except Unsatisfiable:
        pytest.skip("this operation takes no input that could be invalid")
