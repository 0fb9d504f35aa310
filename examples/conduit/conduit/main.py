"""The ASGI app: `uvicorn conduit.main:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from conduit.api import router
from conduit.db import Database
from conduit.settings import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.settings = settings
    app.state.db = Database(settings.sqlalchemy_url, settings.db_pool_size)
    try:
        yield
    finally:
        await app.state.db.dispose()


app = FastAPI(title="Conduit", lifespan=lifespan)
app.include_router(router)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    async with app.state.db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return {"status": "ok"}
