"""Member events: the typed contract of ``POST /v1/events`` and of the events Redis Stream.

Every event has an ``event_id`` (exactly-once key), a ``type``, a ``member_id`` and a ``ts``.
Validation is strict: bad input is rejected with a message naming the field, never half-applied.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

MEMBER_ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
MemberId = Annotated[str, Field(min_length=1, max_length=64, pattern=MEMBER_ID_PATTERN)]
EventId = Annotated[str, Field(min_length=1, max_length=128)]
# Names may be any printable text (中文 included) but no control characters, which the store
# uses as separators.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
ShortText = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]

EARLIEST_TS = datetime(1990, 1, 1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)


class Channels(_Strict):
    """Which channels a member accepts marketing on; unset means unchanged."""

    sms: bool | None = None
    app: bool | None = None
    email: bool | None = None


class _EventBase(_Strict):
    event_id: EventId
    member_id: MemberId
    ts: datetime

    @field_validator("ts")
    @classmethod
    def _not_prehistoric(cls, ts: datetime) -> datetime:
        if ts.replace(tzinfo=None) < EARLIEST_TS:
            raise ValueError(f"ts {ts.isoformat()} is before {EARLIEST_TS.date()}")
        return ts


class RegisterEvent(_EventBase):
    """A member joins the programme; the only event that creates a member."""

    type: Literal["register"]
    store_id: ShortText | None = None
    region: ShortText | None = None
    birthday: date | None = None
    phone: Annotated[str, Field(min_length=5, max_length=32, pattern=r"^\+?[0-9 \-]+$")] | None = None
    opted_out: bool = False
    channels: Channels = Field(default_factory=Channels)


class PurchaseLine(_Strict):
    sku: Sku
    qty: float = Field(1.0, gt=0, le=10_000)
    amount: float = Field(ge=0, le=10_000_000, description="line total in yuan")
    category: ShortText | None = None


class PurchaseEvent(_EventBase):
    """A completed checkout: its lines, the store, and points used as payment."""

    type: Literal["purchase"]
    store_id: ShortText | None = None
    basket_id: Annotated[str, Field(max_length=128)] | None = None
    lines: list[PurchaseLine] = Field(min_length=1, max_length=500)
    points_used: int = Field(0, ge=0, le=100_000_000)

    @property
    def total_fen(self) -> int:
        """The basket total in fen (分), exact whatever the order of the lines."""
        return sum(round(line.amount * 100) for line in self.lines)


class CheckinEvent(_EventBase):
    type: Literal["checkin"]


class ShareEvent(_EventBase):
    type: Literal["share"]


class QuestionnaireEvent(_EventBase):
    """A completed questionnaire; its growth value counts once per member."""

    type: Literal["questionnaire"]


class ReferralEvent(_EventBase):
    """``member_id`` referred ``referred_member_id`` (a new member)."""

    type: Literal["referral"]
    referred_member_id: MemberId


class CouponRedeemedEvent(_EventBase):
    type: Literal["coupon_redeemed"]
    code: Annotated[str, Field(min_length=1, max_length=64)]
    value: float = Field(0, ge=0, le=1_000_000)


class PointsAwardedEvent(_EventBase):
    """Bonus points given to a member (a rule's ``award_points``); they expire like earned points."""

    type: Literal["points_awarded"]
    points: int = Field(gt=0, le=1_000_000)
    rule_id: ShortText | None = None


class ProfileEvent(_EventBase):
    """Changes to profile fields; absent fields stay as they are."""

    type: Literal["profile"]
    store_id: ShortText | None = None
    region: ShortText | None = None
    birthday: date | None = None
    phone: Annotated[str, Field(min_length=5, max_length=32, pattern=r"^\+?[0-9 \-]+$")] | None = None


class ConsentEvent(_EventBase):
    """Marketing opt-out and channel preferences."""

    type: Literal["consent"]
    opted_out: bool | None = None
    channels: Channels = Field(default_factory=Channels)


Event = Annotated[
    Union[
        RegisterEvent,
        PurchaseEvent,
        CheckinEvent,
        ShareEvent,
        QuestionnaireEvent,
        ReferralEvent,
        CouponRedeemedEvent,
        PointsAwardedEvent,
        ProfileEvent,
        ConsentEvent,
    ],
    Field(discriminator="type"),
]
EVENT_TYPES: tuple[str, ...] = (
    "register", "purchase", "checkin", "share", "questionnaire",
    "referral", "coupon_redeemed", "points_awarded", "profile", "consent",
)

_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: object) -> Event:
    """Validate one raw event (dict or JSON bytes); raises ``ValueError`` with a readable reason."""
    try:
        if isinstance(raw, (bytes, str)):
            return _event_adapter.validate_json(raw)
        return _event_adapter.validate_python(raw)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field.path: message``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
