"""The service on a Redis Cluster: one client for a cluster URL, members' keys in one slot, the paths that
pipeline Lua scripts work across masters. The whole cluster-capable suite runs with ``make cluster-test``;
this is its quick version inside ``make test``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from engine.audit import AuditLog
from engine.coupons import CouponLedger, CouponTerms
from engine.feature_store import FeatureStore
from engine.ingestion import EventStreamConsumer, publish_events
from engine.keys import member_key
from engine.member_state import PROFILE
from engine.programme import Programme
from engine.redis_server import RedisClusterServers, client_from_url, connect, is_cluster_url, start_redis_cluster
from engine.settings import Settings
from tests.helpers.clock import NOW
from tests.helpers.events import purchase, register


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    servers = start_redis_cluster(tmp_path_factory.mktemp("cluster"))
    yield servers
    servers.stop()


@pytest.fixture
def cluster_client(cluster: RedisClusterServers) -> Iterator[RedisCluster]:
    client = client_from_url(cluster.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()




def test_a_cluster_url_is_recognised_and_others_are_not() -> None:
    assert is_cluster_url("redis://127.0.0.1:7000/?cluster=true")
    assert is_cluster_url("redis://h:7000?cluster=yes&socket_timeout=1")
    assert not is_cluster_url("redis://127.0.0.1:6379/0")
    assert not is_cluster_url("redis://127.0.0.1:6379/0?cluster=false")


def test_connect_gives_a_cluster_client_that_sees_every_master(cluster: RedisClusterServers, settings: Settings) -> None:
    client = connect(settings, cluster.url)
    assert isinstance(client, RedisCluster)
    assert len(client.get_primaries()) == 3
    assert isinstance(connect(settings, cluster.nodes[0].url), redis.Redis)  # a plain URL: a plain client
    client.close()


def test_members_spread_over_masters_ingest_once_and_keep_their_keys_in_one_slot(
    cluster_client: RedisCluster, programme: Programme
) -> None:
    store = FeatureStore(cluster_client, programme, clock=lambda: NOW)
    members = [f"M{i}" for i in range(40)]
    batch = [e for m in members for e in (register(m), purchase(m, amount=10.0 + int(m[1:])))]
    first = store.ingest(batch)
    again = store.ingest(batch)
    assert (first.accepted, first.duplicates, first.rejected) == (80, 0, [])
    assert (again.accepted, again.duplicates) == (0, 80)
    assert store.member_features("M7")["spend_total"] == 17.0
    owners = {cluster_client.get_node_from_key(member_key(m, PROFILE)).name for m in members}
    assert len(owners) == 3  # the batch's commits really went to three masters
    slots = {cluster_client.keyslot(key) for key in cluster_client.scan_iter(match=member_key("M7", "*"))}
    assert len(slots) == 1 and len(list(cluster_client.scan_iter(match=member_key("M7", "*")))) >= 3
    assert set(store.member_ids()) == set(members)  # SCAN visits every master


def test_stream_consumer_and_coupons_work_on_the_cluster(
    cluster_client: RedisCluster, programme: Programme, tmp_path: Path
) -> None:
    store = FeatureStore(cluster_client, programme, clock=lambda: NOW)
    consumer = EventStreamConsumer(store, consumer="c1", block_ms=10)
    publish_events(cluster_client, [register("A"), purchase("A", amount=12.0)])
    assert consumer.run_once() == 2
    assert store.member_features("A")["spend_total"] == 12.0
    ledger = CouponLedger(cluster_client, AuditLog(cluster_client, tmp_path, clock=lambda: NOW),
                          clock=lambda: NOW, store=store)
    coupon = ledger.issue("A", CouponTerms(template="PCT20", kind="percent_off", value=20, valid_days=14),
                          "r1", "app", issuance="req-1")
    assert ledger.issue("A", coupon.terms, "r1", "app", issuance="req-1").code == coupon.code
    assert ledger.redeem(coupon.code, "A", "S001").status == "redeemed"
    assert store.member_features("A")["coupons_redeemed"] == 1
