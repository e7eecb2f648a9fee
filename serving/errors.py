"""Errors to HTTP, in one place: what each refusal of the engine and the API is as a status and a JSON body.

The engine raises errors that say why in its own words (``CouponError.reason``); routes let them
through, and the handlers here answer them. Every error body has ``detail`` (what is wrong, for a
person); a refusal with a reason also has ``reason`` (for a program).
"""

from __future__ import annotations

import logging

import pydantic_core
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from engine.coupons import CouponError, CouponRefusal
from engine.redis_circuit import REDIS_DOWN
from serving.auth import OutOfScope

log = logging.getLogger(__name__)

COUPON_STATUS: dict[CouponRefusal, int] = {"not_found": 404, "foreign": 403, "redeemed": 409, "expired": 409}
"""The HTTP status of each reason a coupon is refused (another member's is forbidden; redeemed or expired, a conflict)."""


def install_error_handlers(app: FastAPI) -> None:
    """Answer domain errors, Redis outages, bad requests and bugs with the statuses and bodies above."""

    @app.exception_handler(CouponError)
    async def coupon_refused(request: Request, exc: CouponError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "reason": exc.reason}, status_code=COUPON_STATUS[exc.reason])

    @app.exception_handler(OutOfScope)
    async def out_of_scope(request: Request, exc: OutOfScope) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "the feature store (Redis) is unavailable; retry shortly"}, status_code=503)

    for error in REDIS_DOWN:
        app.add_exception_handler(error, redis_unavailable)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own 422, serialised by pydantic: the errors echo the input, and Python's JSON parser
        # accepts NaN and Infinity, which the standard encoder then refuses to write (that made a 500;
        # orjson refused integers past 64 bits). NaN and infinities are written as null; the message
        # still says what is wrong and where.
        body = pydantic_core.to_json({"detail": jsonable_encoder(exc.errors())}, inf_nan_mode="null",
                                     serialize_unknown=True)
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug must not take the worker down or leak internals; the log has the traceback.
        log.exception("unhandled error", extra={"route": request.url.path})
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)
