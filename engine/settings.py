"""One typed settings object, read from the environment (prefix ``NBO_``, nested with ``__``).

Defaults are the domain rules of ``shared/DESIGN.md``; every threshold and rate is configuration,
e.g. ``NBO_TIERS__SILVER_GROWTH=600`` or ``NBO_POINTS__EXPIRY_MONTHS=24``.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TIERS: tuple[str, ...] = ("regular", "silver", "gold", "diamond")
"""Tiers from lowest to highest; a tier's rank is its index here."""


class TierThresholds(BaseModel):
    """Growth value (over the trailing ``window_months``) and extra conditions for each tier."""

    silver_growth: float = 500
    gold_growth: float = 1500
    gold_month_spend: float = 200
    diamond_growth: float = 3000
    diamond_referrals: int = 1
    window_months: int = Field(12, ge=1, description="growth counts over this many calendar months")
    keep_days: int = Field(365, ge=1, description="a tier reached is kept this long without re-qualifying")


class GrowthRules(BaseModel):
    """Growth value (成长值) awarded per action."""

    per_yuan: float = 1.0
    checkin: float = 5
    share: float = 20
    referral: float = 50
    questionnaire: float = 10


class PointsRules(BaseModel):
    """Points (积分) earned per yuan by tier, their value and their expiry."""

    earn_per_yuan: dict[str, float] = Field(
        default_factory=lambda: {"regular": 1.0, "silver": 1.2, "gold": 1.5, "diamond": 2.0}
    )
    points_per_yuan_redeemed: int = 100
    expiry_months: int = Field(12, ge=1, description="a month's points expire at the end of the month this many months later")

    @field_validator("earn_per_yuan")
    @classmethod
    def _every_tier_has_a_rate(cls, rates: dict[str, float]) -> dict[str, float]:
        missing = [t for t in TIERS if t not in rates]
        if missing:
            raise ValueError(f"earn_per_yuan lacks a rate for tiers {missing}")
        return rates


class SegmentRules(BaseModel):
    """RFM segments, checked in order: new, lapsed, at_risk, champion, loyal, else occasional."""

    new_within_days: int = 30
    lapsed_after_days: int = 90
    at_risk_after_days: int = 30
    champion_recency_days: int = 14
    champion_orders_90d: int = 8
    loyal_recency_days: int = 30
    loyal_orders_90d: int = 3


class ArbitrationRules(BaseModel):
    """How candidate offers are ranked: priority first, expected value to break ties and near-ties.

    score = priority + expected_value, where expected_value (yuan) =
    propensity x (margin_rate x expected spend - coupon cost). See ``engine.arbitration``.
    """

    max_offers: int = Field(3, ge=1, le=20)
    max_coupons: int = Field(1, ge=0, le=10, description="coupons issued per checkout at most")
    margin_rate: float = Field(0.25, ge=0, le=1, description="gross margin on incremental spend")
    base_propensity: dict[str, float] = Field(
        default_factory=lambda: {"coupon": 0.12, "recommend": 0.06, "points": 0.3, "message": 0.02, "tag": 0.0},
        description="chance an offer of this kind is taken up, before member adjustments",
    )
    redeemer_uplift: float = Field(0.1, ge=0, description="propensity x (1 + this per coupon redeemed before, up to 5)")


class TriggerSettings(BaseModel):
    """The automated triggers: the daily run, the coupon outbox and its delivery, measurement."""

    daily_at: str = Field("09:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                          description="local time the daily rules are evaluated at (and the scheduler starts)")
    scheduler: bool = Field(False, description="run the daily rules inside `nbo serve` at daily_at")
    event_triggers: bool = Field(True, description="evaluate event.<type> rules as events are ingested")
    deliver: bool = Field(True, description="deliver the outbox inside `nbo serve`")
    adapter: Literal["log", "webhook"] = Field("log", description="where deliveries go")
    webhook_url: str | None = Field(None, description="the messaging system's endpoint (adapter webhook)")
    webhook_timeout_seconds: float = Field(5.0, gt=0)
    quiet_hours: dict[str, str] = Field(
        default_factory=lambda: {"sms": "21:00-09:00", "email": "22:00-08:00", "app": "23:00-07:00"},
        description="channel -> local HH:MM-HH:MM when nothing is sent on it (deliveries wait until the end)")
    chunk_size: int = Field(1000, ge=1, le=100_000, description="members per unit of work of the daily run")
    claim_idle_seconds: float = Field(60, gt=0, description="work or outbox entries left this long by a "
                                      "consumer are claimed by another (XAUTOCLAIM)")
    max_delivery_attempts: int = Field(5, ge=1, description="then the entry goes to the dead-letter stream")
    attribution_days: int = Field(14, ge=1, le=365, description="spend counted for lift this many days from exposure")

    @field_validator("quiet_hours")
    @classmethod
    def _windows_are_times(cls, windows: dict[str, str]) -> dict[str, str]:
        import re

        for channel, window in windows.items():
            if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]", window):
                raise ValueError(f"quiet_hours.{channel}: {window!r} is not HH:MM-HH:MM")
        return windows


class RateBudget(BaseModel):
    """A token bucket: ``per_second`` tokens added each second up to ``burst`` (per_second 0: unlimited)."""

    per_second: float = Field(ge=0)
    burst: int = Field(ge=1)


class RateLimitSettings(BaseModel):
    """Requests per API key and class of routes (``serving.rate_limits``), and the redemption lockout.

    The defaults are far above what a till or an app's backend does (a till checks out a basket every
    ~30 s; a store's key for 20 tills, well under 1/s) and stop a broken client's flood."""

    enabled: bool = True
    checkout: RateBudget = Field(default_factory=lambda: RateBudget(per_second=500, burst=1000),
                                 description="next-best-offer and coupon redemptions")
    events: RateBudget = Field(default_factory=lambda: RateBudget(per_second=200, burst=400),
                               description="event batches (of up to 5,000 events each)")
    reads: RateBudget = Field(default_factory=lambda: RateBudget(per_second=100, burst=200),
                              description="member features, rules, models, reports, audit")
    admin: RateBudget = Field(default_factory=lambda: RateBudget(per_second=10, burst=30),
                              description="rule reloads, keys, erasures and exports")
    redeem_failures_per_key: int = Field(50, ge=1, description="unknown codes a key may try per window")
    redeem_failures_per_member: int = Field(10, ge=1, description="unknown codes presented for a member per window")
    lockout_window_seconds: int = Field(900, ge=1, description="failures count over this; a lockout lasts to its end")


class ConsoleSettings(BaseModel):
    """Console sign-in sessions (server-side, in Redis; the cookie holds only a random id)."""

    session_idle_minutes: float = Field(30, gt=0, description="a session unused this long ends")
    session_hours: float = Field(12, gt=0, description="a session ends this long after sign-in, used or not")


class Settings(BaseSettings):
    """Everything the service, the CLI and the tests configure."""

    model_config = SettingsConfigDict(env_prefix="NBO_", env_nested_delimiter="__", extra="ignore")

    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "NBO_REDIS_URL"),
        description="Redis to use; unset starts an embedded redis-server under var_dir/redis",
    )
    var_dir: Path = Field(Path("var"), description="runtime data: embedded Redis, secrets, imported data")
    rules_dir: Path = Path("rules")
    catalogue_path: Path | None = Field(None, description="sku,category file; default var_dir/catalogue.parquet")
    mlflow_tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    mlflow_artifacts_dir: Path = Path("mlruns/artifacts")
    data_dir: Path = Field(Path("../shared/data"), description="the shared real transaction logs")
    timezone: str = Field("Asia/Shanghai", description="stores' local time: days and months are counted in it")
    now: datetime | None = Field(
        None, description="start the product's clock at this moment instead of the real time (ISO 8601; without an "
        "offset it is the stores' local time); it then runs on in real time. For tests and replays "
        "(engine.clock)")
    pii_key: str | None = Field(None, description="secret for hashing phone numbers; generated under var_dir if unset")
    store_regions: dict[str, str] = Field(
        default_factory=dict, description="store id -> its region (JSON, e.g. NBO_STORE_REGIONS='{\"S001\": \"north\"}'): "
        "a region key sees the rules of its stores, a store key the rules of its region")
    event_dedup_days: int = Field(35, ge=1, description="how long an event_id is remembered for exactly-once")
    stream_consumer: bool = Field(True, description="consume the events Redis Stream inside `nbo serve`")
    writer_cache_members: int = Field(
        50_000, ge=0, description="members whose last committed state an ingesting process keeps (~2.3 KB each; "
        "it saves a read for members seen again; 0: none)")
    stream_claim_idle_seconds: float = Field(
        30, gt=0, description="events left pending this long by a consumer (it died) are claimed by another")
    model_reload_seconds: float = Field(60, gt=0, description="how often serving asks the registry for new champions")
    redis_ca_file: Path | None = Field(
        None, description="CA certificate(s) that sign the server's TLS certificate, for a rediss:// REDIS_URL")
    redis_circuit_failures: int = Field(
        3, ge=0, description="consecutive Redis connection errors or timeouts that open the circuit (0: no circuit)")
    redis_circuit_cooldown_seconds: float = Field(
        2.0, gt=0, description="while the circuit is open, calls fail at once; then one call probes Redis")

    tiers: TierThresholds = Field(default_factory=TierThresholds)
    growth: GrowthRules = Field(default_factory=GrowthRules)
    points: PointsRules = Field(default_factory=PointsRules)
    segments: SegmentRules = Field(default_factory=SegmentRules)
    arbitration: ArbitrationRules = Field(default_factory=ArbitrationRules)
    triggers: TriggerSettings = Field(default_factory=TriggerSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @field_validator("now")
    @classmethod
    def _now_is_aware(cls, now: datetime | None, info) -> datetime | None:
        if now is None or now.tzinfo is not None:
            return now
        return now.replace(tzinfo=ZoneInfo(info.data.get("timezone") or "Asia/Shanghai"))

    def pii_secret(self) -> bytes:
        """The key for hashing personal data: from the environment, else created once under var_dir."""
        if self.pii_key:
            return self.pii_key.encode()
        path = self.var_dir / "pii.key"
        if not path.exists():
            import secrets

            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
