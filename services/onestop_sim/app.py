"""The FastAPI application: the vendor's seven endpoints, the attachments, and `/_sim/*`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio
from fastapi import FastAPI

from services.onestop_sim import api, api_files, control, downloads, errors, introspect
from services.onestop_sim.context import Sim
from services.onestop_sim.middleware import FaultMiddleware

log = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0
MAX_BODY = 32 * 1024 * 1024

DESCRIPTION = """A stand-in for the one-stop system (phần mềm một cửa điện tử) of the connection document.
`dangnhap`, `dongbodulieumotcua` and `capnhattrangthaidongbo` follow the document; `danhmucloaitailieu`,
`capnhattrangthaidongbofile`, `capnhatfiletheoloaitailieu` and `xoafiletheoloaitailieu` are dongbo's
design of APIs the document only names. See docs/onestop-api.md."""


def create_app(sim: Sim) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        flusher = asyncio.ensure_future(_flush_forever(sim))
        try:
            yield
        finally:
            flusher.cancel()
            await anyio.to_thread.run_sync(sim.counters.flush)

    # The body limit fits the largest upload (20 MiB as base64) and keeps a fuzzer's gigabyte out of memory.
    app = FastAPI(title="Một cửa điện tử (simulator)", version="1.0", description=DESCRIPTION, lifespan=lifespan,
                  max_body_size=MAX_BODY)
    app.state.sim = sim
    errors.install(app)
    for module in (api, api_files, downloads, introspect, control):
        app.include_router(module.router)
    app.add_middleware(FaultMiddleware, faults=sim.faults)
    _drop_422(app)
    return app


async def _flush_forever(sim: Sim) -> None:
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        try:
            await anyio.to_thread.run_sync(sim.counters.flush)
        except Exception:  # a busy database now is no reason to stop counting
            log.exception("could not write the counters; will try again")


def _drop_422(app: FastAPI) -> None:
    """Invalid input answers 400 in the vendor's shape (errors.py), so the schema should not promise 422."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
