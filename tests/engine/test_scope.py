"""What a scoped reader may see (engine.scope): members by their region and home store, rules by where they apply."""

from __future__ import annotations

import pytest
import redis

from engine.feature_store import FeatureStore
from engine.scope import EVERYTHING, Scope

STORES = {"S001": "north", "S002": "south"}


def test_scopes_parse_and_say_what_they_cover() -> None:
    store, region = Scope.parse("store:S001"), Scope.parse("region:north")
    assert (str(store), str(region), str(Scope.parse(None))) == ("store:S001", "region:north", "everything")
    assert store.covers("south", "S001") and not store.covers("north", "S002")
    assert region.covers("north", None) and not region.covers("south", "S001")
    assert EVERYTHING.covers(None, None)
    for bad in ("store:", "city:X", "S001"):
        with pytest.raises(ValueError, match="region:NAME or store:ID"):
            Scope.parse(bad)


def test_members_in_scope_are_read_from_their_profiles_in_one_round_trip(store: FeatureStore,
                                                                         redis_client: redis.Redis) -> None:
    store.ingest([{"event_id": f"r-{m}", "type": "register", "member_id": m, "ts": "2026-01-05T10:00:00",
                   "store_id": s, "region": STORES[s]} for m, s in (("A", "S001"), ("B", "S002"), ("C", "S001"))])
    members = ["A", "B", "C", "UNKNOWN"]
    assert Scope.parse("store:S001").members_in(redis_client, members) == {"A", "C"}
    assert Scope.parse("region:south").members_in(redis_client, members) == {"B"}
    assert EVERYTHING.members_in(redis_client, members) == set(members)


@pytest.mark.parametrize(("scope", "regions", "stores", "sees", "confined"), [
    ("store:S001", [], [], True, False),  # everywhere
    ("store:S001", [], ["S001"], True, True),
    ("store:S001", [], ["S002"], False, False),
    ("store:S001", ["north"], [], True, False),  # S001 is in the north
    ("store:S001", ["south"], [], False, False),
    ("region:north", [], ["S001"], True, True),
    ("region:north", [], ["S002"], False, False),
    ("region:north", ["north"], [], True, True),
    ("region:north", [], ["S009"], False, False),  # a store whose region is not configured: not shown
])
def test_a_rule_is_seen_where_it_certainly_applies(scope: str, regions: list, stores: list, sees: bool,
                                                   confined: bool) -> None:
    reader = Scope.parse(scope)
    assert reader.applies_to_rule(regions, stores, STORES) is sees
    assert reader.confines_rule(regions, stores, STORES) is confined
    assert not Scope.parse("store:S001").applies_to_rule(["north"], [], {}), "unknown region: hidden"
