"""The decision core: member state and features, events, the Redis feature store, ingestion.

Public surface (everything else is private to the package):

- ``engine.settings``: ``Settings``, ``get_settings``, ``TIERS``
- ``engine.events``: ``parse_event``, ``Event`` and its types, ``EVENT_TYPES``
- ``engine.clock``: ``Clock``, ``utc_now``, ``clock_from_settings`` (the one "now")
- ``engine.calendar``: ``day_number``, ``day_to_date``, ``month_index``, ``local_seconds`` (day and month arithmetic)
- ``engine.programme``: ``Programme`` (settings, the stores' time zone, keyed hashing)
- ``engine.member_state``: ``MemberState``, ``apply_event``, ``EventRejected``
- ``engine.features``: ``FEATURES``, ``FEATURE_NAMES``, ``member_features``
- ``engine.keys``: every Redis key, stream, hash tag and TTL (the builders), ``KINDS``
- ``engine.feature_store``: ``FeatureStore``, ``IngestResult``
- ``engine.point_in_time``: ``features_as_of``, ``history_events``, ``fold_history``
- ``engine.ingestion``: ``backfill``, ``publish_events``, ``EventStreamConsumer``
- ``engine.transactions``: ``read_transactions``, ``write_transactions``, ``baskets``
- ``engine.redis_server``: ``connect``, ``start_redis_server``, ``embedded_redis``
- ``engine.redis_circuit``: ``REDIS_DOWN`` (what a call raises when Redis is away), ``RedisCircuitOpen``
"""
