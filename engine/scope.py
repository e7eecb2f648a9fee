"""What a caller may see: everything, one region, or one store (an API key's scope, ``region:R`` / ``store:S``).

Every read that returns members or figures made from them takes a ``Scope`` and keeps to it: a
member is in scope by the region and home store of their profile; a rule by where it applies.
Reports count only the members in scope (``engine.measurement``), the rules list shows the rules
that apply there, and the audit view the entries about members in scope. New reads (the overview,
tasks) call the same methods: ``covers`` for one member's region and store, ``members_in`` for
many at once (one round trip), ``applies_to_rule`` for a rule's ``scope:`` (with the stores' regions,
``Settings.store_regions``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import redis

from engine.keys import member_key
from engine.member_state import PROFILE

ScopeKind = Literal["all", "region", "store"]


@dataclass(frozen=True)
class Scope:
    """Everything (``kind == "all"``), the members of one region, or the members whose home store is one store."""

    kind: ScopeKind = "all"
    value: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> Scope:
        """``region:NAME``, ``store:ID`` or nothing (everything); ``ValueError`` says what is accepted."""
        if not text:
            return EVERYTHING
        kind, sep, value = text.partition(":")
        if not sep or kind not in ("region", "store") or not value:
            raise ValueError(f"scope {text!r} must be region:NAME or store:ID")
        return cls(kind, value)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return "everything" if self.kind == "all" else f"{self.kind}:{self.value}"

    @property
    def everything(self) -> bool:
        return self.kind == "all"

    def covers(self, region: str | None, store: str | None) -> bool:
        """Whether a member of ``region`` whose home store is ``store`` (or a checkout at ``store``) is in scope."""
        if self.kind == "all":
            return True
        return (region if self.kind == "region" else store) == self.value

    def members_in(self, client: redis.Redis, member_ids: Iterable[str]) -> set[str]:
        """Which of ``member_ids`` are in scope, by their profiles' region and store (one pipelined round trip;
        unknown and erased members are in no scope but everything)."""
        ids = list(dict.fromkeys(member_ids))
        if self.kind == "all":
            return set(ids)
        pipe = client.pipeline(transaction=False)
        for member_id in ids:
            pipe.hmget(member_key(member_id, PROFILE), ["region", "store"])
        return {member_id for member_id, (region, store) in zip(ids, pipe.execute()) if self.covers(region, store)}

    def applies_to_rule(self, regions: Sequence[str], stores: Sequence[str],
                        store_regions: Mapping[str, str] | None = None) -> bool:
        """Whether a rule with these ``scope:`` regions and stores (empty: everywhere) can reach members in scope.

        Which region a store is in comes from ``store_regions`` (the setting ``NBO_STORE_REGIONS``); where it
        cannot be told, the rule is hidden: a scoped reader sees a rule only when it certainly applies there."""
        if self.kind == "all":
            return True
        where = store_regions or {}
        if self.kind == "store":
            if stores and self.value not in stores:
                return False
            return not regions or where.get(self.value) in regions
        if regions and self.value not in regions:
            return False
        return not stores or any(where.get(store) == self.value for store in stores)

    def confines_rule(self, regions: Sequence[str], stores: Sequence[str],
                      store_regions: Mapping[str, str] | None = None) -> bool:
        """Whether everything a rule does is inside this scope (its budget use is then this scope's own figure)."""
        if self.kind == "all":
            return True
        if self.kind == "store":
            return list(stores) == [self.value]
        where = store_regions or {}
        return (list(regions) == [self.value] and not stores) or (
            bool(stores) and all(where.get(store) == self.value for store in stores))


EVERYTHING = Scope()
