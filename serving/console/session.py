"""Who is using the console: a server-side session (``serving.console.sessions``) named by an HttpOnly cookie.

The same keys and roles as the JSON API (``serving.auth``): every page resolves the session, checks
that its key still works and has the permission the page needs, exactly as
``serving.dependencies.require`` does for the API. Forms carry the session's random token, so
another site cannot post a form in the user's name (the cookie is ``SameSite=Strict`` as well).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from engine.redis_circuit import REDIS_DOWN
from serving.auth import PERMISSIONS, ApiKey
from serving.console.messages import pick_language, translator
from serving.console.sessions import SignedIn
from serving.dependencies import ServicesDep
from serving.services import Services

SESSION_COOKIE = "nbo_console_session"
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
    """No session, or one that ended (idle, too old, signed out, its key revoked): go to the sign-in page."""


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in key, its session and the page language."""

    key: ApiKey
    signed_in: SignedIn
    language: str

    @property
    def form_token(self) -> str:
        """What each form of this user carries (checked on every POST): the session's random token."""
        return self.signed_in.session.form_token

    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS and self.key.allows(permission)

    def t(self, key: str, **values: object) -> str:
        return translator(self.language)(key, **values)


def request_language(request: Request) -> str:
    return pick_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def redis_problem() -> ConsoleProblem:
    """A Redis outage is a 503 for the person, not a crash."""
    return ConsoleProblem(503, translator("en")("error.redis"))


def current_session(services: Services, session_id: str | None) -> SignedIn | None:
    """The live session of the cookie's id, or None."""
    if not session_id:
        return None
    try:
        return services.sessions.resolve(session_id)
    except REDIS_DOWN:
        raise redis_problem() from None


def console_user(permission: str):
    """A dependency: the signed-in user if their role has ``permission``; else sign in, or a 403 page."""

    def check(request: Request, services: ServicesDep) -> ConsoleUser:
        signed_in = current_session(services, request.cookies.get(SESSION_COOKIE))
        if signed_in is None or signed_in.key.role not in CONSOLE_ROLES:
            raise SignInRequired()
        user = ConsoleUser(key=signed_in.key, signed_in=signed_in, language=request_language(request))
        if not user.may(permission):
            raise ConsoleProblem(403, user.t("error.forbidden", role=user.key.role, permission=permission))
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
