"""Who is using the console: the API key given once at sign-in, kept in an HttpOnly cookie.

The same keys and roles as the JSON API (``serving.auth``): every page checks the key and the
permission it needs, exactly as ``serving.dependencies.require`` does for the API. Forms carry a
token derived from the key, so another site cannot post a form in the user's name (the cookie
is ``SameSite=Strict`` as well).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from engine.redis_circuit import REDIS_DOWN
from serving.auth import PERMISSIONS, ApiKey
from serving.console.messages import pick_language, translator
from serving.dependencies import ServicesDep
from serving.services import Services

KEY_COOKIE = "nbo_console_key"
LANGUAGE_COOKIE = "nbo_lang"
CONSOLE_PATH = "/console"
CONSOLE_ROLES = frozenset({"marketer", "data-scientist", "admin"})


class ConsoleProblem(Exception):
    """A page cannot be shown: the status and a message for the person (rendered by the console)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInRequired(Exception):
    """No key, or a key that is no longer known: go to the sign-in page."""


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in key, its raw value (for calls to the JSON API) and the page language."""

    key: ApiKey
    raw_key: str
    language: str

    @property
    def form_token(self) -> str:
        """What each form of this user carries (checked on every POST)."""
        return form_token(self.raw_key)

    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS and self.key.allows(permission)

    def t(self, key: str, **values: object) -> str:
        return translator(self.language)(key, **values)


def form_token(raw_key: str) -> str:
    return hmac.new(raw_key.encode(), b"nbo-console-form", hashlib.sha256).hexdigest()[:32]


def request_language(request: Request) -> str:
    return pick_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def verify_key(services: Services, raw_key: str) -> ApiKey | None:
    """The key's identity, or None; a Redis outage is a 503 for the person, not a crash."""
    try:
        return services.keys.verify(raw_key)
    except REDIS_DOWN:
        raise ConsoleProblem(503, translator("en")("error.redis")) from None


def console_user(permission: str):
    """A dependency: the signed-in user if their role has ``permission``; else sign in, or a 403 page."""

    def check(request: Request, services: ServicesDep) -> ConsoleUser:
        language = request_language(request)
        raw_key = request.cookies.get(KEY_COOKIE)
        key = verify_key(services, raw_key) if raw_key else None
        if key is None or key.role not in CONSOLE_ROLES:
            raise SignInRequired()
        user = ConsoleUser(key=key, raw_key=raw_key, language=language)
        if not user.may(permission):
            raise ConsoleProblem(403, user.t("error.forbidden", role=key.role, permission=permission))
        return user

    return check


def check_form_token(user: ConsoleUser, token: str) -> None:
    if not hmac.compare_digest(token or "", user.form_token):
        raise ConsoleProblem(403, user.t("error.csrf"))


# The signed-in user, admitted for one permission (the console's pages name what they need).
RulesReader = Annotated[ConsoleUser, Depends(console_user("rules:read"))]
RulesWriter = Annotated[ConsoleUser, Depends(console_user("rules:write"))]
OfferTester = Annotated[ConsoleUser, Depends(console_user("offers:try"))]
ModelsReader = Annotated[ConsoleUser, Depends(console_user("models:read"))]
ModelsWriter = Annotated[ConsoleUser, Depends(console_user("models:write"))]
