"""The console's pages under ``/console``: thin handlers that check the key, call ``pages`` or the
engine, and render a template. Same keys and roles as the JSON API (``serving.auth``)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import islice
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from engine.events import MEMBER_ID_PATTERN
from engine.redis_circuit import REDIS_DOWN
from serving.auth import OutOfScope
from serving.console import pages
from serving.console.api import get_json
from serving.console.headers import ConsoleSecurityHeaders
from serving.console.messages import LANGUAGES, translator
from serving.console.rule_files import (
    RuleFileRefused,
    check_rule_file,
    read_rule_file,
    save_rule_file,
)
from serving.console.session import (
    CONSOLE_PATH,
    CONSOLE_ROLES,
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    ConsoleProblem,
    ConsoleUser,
    ModelsReader,
    ModelsWriter,
    OfferTester,
    RulesReader,
    RulesWriter,
    SignInRequired,
    check_form_token,
    redis_problem,
    request_language,
)
from serving.dependencies import ServicesDep
from serving.schemas import OfferRequest
from serving.scoping import rules_report, visible_rules
from serving.services import Services

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix=CONSOLE_PATH, include_in_schema=False)
REPORT_DAYS = 30
PLOT_NAME = re.compile(r"^[a-z0-9_]{1,64}\.png$")
_rate = pages.RequestRate()


def render(request: Request, template: str, user: ConsoleUser | None, status_code: int = 200, **context) -> HTMLResponse:
    language = user.language if user else request_language(request)
    return templates.TemplateResponse(request, template, {
        "user": user, "t": translator(language), "language": language, "languages": LANGUAGES,
        "path": request.url.path + (f"?{request.url.query}" if request.url.query else ""), **context,
    }, status_code=status_code)


def install_console(app: FastAPI) -> None:
    """Add the console's pages, its static files, its error pages and its security headers to ``app``."""
    app.include_router(router)
    app.add_middleware(ConsoleSecurityHeaders, prefix=CONSOLE_PATH)
    app.mount(f"{CONSOLE_PATH}/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = CONSOLE_PATH
        return RedirectResponse(f"{CONSOLE_PATH}/login?next={quote(target)}", status_code=303)

    @app.exception_handler(ConsoleProblem)
    async def problem(request: Request, exc: ConsoleProblem) -> Response:
        return render(request, "error.html", None, exc.status, message=exc.message)


def _next(target: str | None) -> str:
    """Only a console page is a place to go back to (never another site)."""
    if target and target.startswith(CONSOLE_PATH) and not target.startswith("//") and "\\" not in target:
        return target
    return f"{CONSOLE_PATH}/rules"


# --- signing in, language --------------------------------------------------------------------------


@router.get("")
def console_home() -> RedirectResponse:
    return RedirectResponse(f"{CONSOLE_PATH}/rules", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", None, next=_next(next))


@router.post("/login")
def login(request: Request, services: ServicesDep, key: str = Form("", max_length=200),
          next: str = Form("", max_length=500)) -> Response:
    """Exchange a key for a session: the cookie holds only the session's random id (``serving.console.sessions``)."""
    t = translator(request_language(request))
    key = key.strip()
    try:
        found = services.keys.verify(key) if key else None
        if found is None:
            return render(request, "login.html", None, 401, next=_next(next), error=t("login.unknown"))
        if found.role not in CONSOLE_ROLES:
            return render(request, "login.html", None, 403, next=_next(next),
                          error=t("login.console_roles", role=found.role))
        started = services.sessions.sign_in(key)
    except REDIS_DOWN:
        raise redis_problem() from None
    if started is None:  # revoked between the two looks
        return render(request, "login.html", None, 401, next=_next(next), error=t("login.unknown"))
    session_id, _ = started
    response = RedirectResponse(_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict", path=CONSOLE_PATH,
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request, services: ServicesDep) -> RedirectResponse:
    """End the session in Redis (not only the cookie: a copied cookie stops working too)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        try:
            services.sessions.sign_out(session_id)
        except REDIS_DOWN:
            raise redis_problem() from None
    response = RedirectResponse(f"{CONSOLE_PATH}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=CONSOLE_PATH)
    return response


@router.get("/lang/{code}")
def choose_language(code: str, next: str | None = None) -> Response:
    if code not in LANGUAGES:
        raise ConsoleProblem(404, f"no language {code!r}; choose one of {', '.join(LANGUAGES)}")
    response = RedirectResponse(_next(next), status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, code, samesite="lax", path=CONSOLE_PATH, max_age=365 * 86400)
    return response


# --- rules ----------------------------------------------------------------------------------------


def _since(text: str | None, services: Services) -> date:
    today = services.today()
    if not text:
        return today - timedelta(days=REPORT_DAYS)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConsoleProblem(422, f"since={text!r}: use a date as YYYY-MM-DD") from None


@dataclass(frozen=True)
class _Reports:
    """The measurement report by rule id and the days it covers, or why there is none."""

    rules: dict[str, dict] | None = None
    window: tuple[date, date] | None = None
    note: str | None = None


async def _rule_reports(user: ConsoleUser, services: Services, since: date) -> _Reports:
    """``GET /v1/reports/rules``'s answer for the user's key (the same function, permission and scope)."""
    if not user.may("reports:read"):
        return _Reports(note="rules.reports_forbidden")
    try:
        report = await run_in_threadpool(rules_report, services, user.key, since)
    except (REDIS_DOWN, ValueError):
        return _Reports(note="rules.reports_unavailable")
    body = report.model_dump(mode="json")
    window = (date.fromisoformat(body["since"]), date.fromisoformat(body["until"]))
    return _Reports({r["rule_id"]: r for r in body.get("rules", []) if r.get("rule_id")}, window)


async def _rules_page(request: Request, user: ConsoleUser, services: Services, since_text: str | None = None,
                      status_code: int = 200, **context) -> HTMLResponse:
    since = _since(since_text, services)
    reports = await _rule_reports(user, services, since)

    def build() -> list[pages.RuleRow]:
        statuses = visible_rules(services.rules.statuses(services.clock(), services.limits), user.key.reach,
                                 services.settings.store_regions)
        return pages.rule_rows(statuses, reports.rules, services.audit.recent(500, "rules."), services.rules.rules_dir,
                               services.programme.tz, reports.window)

    rows = await run_in_threadpool(build)
    context.setdefault("edit_file", "")
    context.setdefault("edit_text", "")
    return render(request, "rules.html", user, status_code, rows=rows, since=since, reports_note=reports.note,
                  version=services.rules.version, **context)


@router.get("/rules")
async def rules_page(request: Request, user: RulesReader, services: ServicesDep, since: str | None = None,
                     edit: str | None = None) -> HTMLResponse:
    context = {}
    if edit:
        try:
            context = {"edit_file": edit, "edit_text": read_rule_file(services.rules.rules_dir, edit)}
        except RuleFileRefused as exc:
            raise ConsoleProblem(404, str(exc)) from None
    return await _rules_page(request, user, services, since, **context)


async def _check(services: Services, file: str, text: str):
    try:
        return await run_in_threadpool(check_rule_file, services.rules.rules_dir, file.strip(), text,
                                       services.programme, services.store, services.clock())
    except RuleFileRefused as exc:
        raise ConsoleProblem(422, str(exc)) from None


@router.post("/rules/check")
async def check_rules(request: Request, user: RulesReader, services: ServicesDep, file: str = Form(..., max_length=80),
                      text: str = Form(..., max_length=200_000), csrf: str = Form("")) -> HTMLResponse:
    check_form_token(user, csrf)
    check = await _check(services, file, text)
    return await _rules_page(request, user, services, status_code=200 if check.ok else 422, check=check,
                             edit_file=file.strip(), edit_text=text)


@router.post("/rules/save")
async def save_rules(request: Request, user: RulesWriter, services: ServicesDep, file: str = Form(..., max_length=80),
                     text: str = Form(..., max_length=200_000), csrf: str = Form("")) -> HTMLResponse:
    check_form_token(user, csrf)
    file = file.strip()
    check = await _check(services, file, text)
    if not check.ok:
        return await _rules_page(request, user, services, status_code=422, check=check, edit_file=file, edit_text=text)
    actor = f"key:{user.key.key_id}"

    def save_and_reload():
        save_rule_file(services.rules.rules_dir, file, text, check, services.audit, actor)
        return services.rules.reload(actor=actor)

    report = await run_in_threadpool(save_and_reload)
    notice = (user.t("check.saved", file=file, version=report.version) if report.ok else
              user.t("check.saved_not_live", file=file, error="; ".join(str(p) for p in report.errors[:3])))
    return await _rules_page(request, user, services, status_code=200 if report.ok else 422, check=check,
                             notice=notice, edit_file=file, edit_text=text)


# --- try it ---------------------------------------------------------------------------------------


def _sample_members(services: Services, user: ConsoleUser, count: int = 20) -> list[str]:
    """Some members to try, of the user's scope only."""
    candidates = list(islice(services.store.member_ids(batch=200), count if user.key.reach.everything else 2000))
    return sorted(user.key.reach.members_in(services.redis, candidates))[:count]


@router.get("/try")
def try_page(request: Request, user: OfferTester, services: ServicesDep, member: str | None = None) -> HTMLResponse:
    return render(request, "try.html", user, members=_sample_members(services, user),
                  form={"member": member or "", "store": "", "channel": "pos", "basket": ""})


@router.post("/try")
def try_it(request: Request, user: OfferTester, services: ServicesDep, member: str = Form(..., max_length=64),
           store: str = Form("", max_length=64), channel: str = Form("pos", max_length=16),
           basket: str = Form("", max_length=20_000), csrf: str = Form("")) -> HTMLResponse:
    check_form_token(user, csrf)
    member = member.strip()
    form = {"member": member, "store": store.strip(), "channel": channel, "basket": basket}
    members = _sample_members(services, user)

    def refuse(status: int, message: str) -> HTMLResponse:
        return render(request, "try.html", user, status, members=members, form=form, error=message)

    try:
        lines = pages.parse_basket(basket)
    except pages.BasketProblem as exc:
        return refuse(422, user.t("try.bad_basket", line=exc.line, problem=exc.problem))
    features = services.store.member_features(member) if re.match(MEMBER_ID_PATTERN, member) else None
    if features is None:
        return refuse(404, user.t("try.unknown_member", member=member))
    if not user.key.covers(features.get("region"), features.get("home_store")):
        return refuse(403, f"member {member!r} is outside this key's scope {user.key.scope}")
    try:
        offer_request = OfferRequest(request_id=f"console-{uuid.uuid4().hex[:16]}", member_id=member,
                                     store_id=store.strip() or str(features.get("home_store") or "console"),
                                     channel=channel, basket=lines)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return refuse(422, user.t("try.bad_request", problem=problem))
    try:
        answer = services.next_best_offer.answer(offer_request, user.key)
    except OutOfScope as exc:
        return refuse(403, str(exc))
    features = services.store.member_features(member) or features
    compiled = services.rules.compiled
    coupon_names = {tid: tmpl.name for tid, tmpl in compiled.loaded.templates.items()} if compiled else {}
    return render(request, "try.html", user, members=members, form=form, answer=answer, features=features,
                  coupon_names=coupon_names,
                  progress=pages.tier_progress(features, services.settings.tiers),
                  points_per_yuan=services.settings.points.points_per_yuan_redeemed)


# --- models ---------------------------------------------------------------------------------------


def _registry(services: Services, user: ConsoleUser):
    from training.registry import ModelRegistry

    settings = services.settings
    return ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir, services.audit,
                         actor=f"key:{user.key.key_id}")


@router.get("/models")
def models_page(request: Request, user: ModelsReader, services: ServicesDep) -> HTMLResponse:
    return _models(request, user, services)


def _models(request: Request, user: ConsoleUser, services: Services, status_code: int = 200, **context) -> HTMLResponse:
    models = pages.model_versions(_registry(services, user))
    in_use = ", ".join(f"{name} {version or '-'}" for name, version in services.models.versions.items())
    return render(request, "models.html", user, status_code, models=models, in_use=in_use, **context)


@router.post("/models/promote")
def promote(request: Request, user: ModelsWriter, services: ServicesDep, name: str = Form(..., max_length=64),
            version: str = Form(..., max_length=16), csrf: str = Form("")) -> HTMLResponse:
    """The same promotion as ``nbo models promote`` (no ``--force`` here): refused unless it beats the champion."""
    from mlflow.exceptions import MlflowException

    from training.registry import PromotionRefused

    check_form_token(user, csrf)
    registry = _registry(services, user)
    try:
        result = registry.promote(name, version)
    except PromotionRefused as exc:
        return _models(request, user, services, 409, error=user.t("models.refused", name=name, message=str(exc)))
    except MlflowException:
        return _models(request, user, services, 404, error=user.t("models.unknown", name=name, version=version))
    services.models.reload_if_changed()
    return _models(request, user, services, notice=user.t("models.promoted", name=name, message=result.message,
                                                           version=version))


@router.get("/models/{name}/{version}/plots/{plot}")
def model_plot(name: str, version: str, plot: str, user: ModelsReader, services: ServicesDep) -> Response:
    if not PLOT_NAME.match(plot) or not version.isdigit():
        raise ConsoleProblem(404, f"no plot {plot!r} of {name} version {version}")
    png = pages.plot_png(_registry(services, user), name, version, plot)
    if png is None:
        raise ConsoleProblem(404, f"no plot {plot!r} of {name} version {version}")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


# --- health ---------------------------------------------------------------------------------------


@router.get("/health")
async def health_page(request: Request, user: RulesReader, services: ServicesDep) -> HTMLResponse:
    readiness = await get_json(request.app, "/readyz")
    store = await run_in_threadpool(pages.store_figures, services.redis)
    checks = (readiness.body or {}).get("checks", {})
    return render(request, "health.html", user, requests=pages.request_figures(_rate), store=store,
                  ready=readiness.status == 200, not_ready={k: v for k, v in checks.items() if v != "ok"},
                  degraded_answers=pages.counter_values("nbo_degraded_answers", "why"),
                  rules_version=services.rules.version, models=services.models.versions)
