"""The httpx client the driver sends through: over perfgate's transport, or to an ASGI app."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from perfgate.probes.transport import ASGIApp, KeepAliveTransport

__all__ = ["DriverClient", "make_client"]

_DEFAULT_TIMEOUT = httpx.Timeout(5.0)  # httpx's own default


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    max_connections: int,
    app: ASGIApp | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the driver: in-process when ``app`` is given, else over TCP.

    App exceptions become 500 responses (as a real server would answer), not raised errors.
    """
    timeout = httpx.Timeout(timeout_s)
    if app is not None:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url=base_url,
            headers=dict(headers),
            timeout=timeout,
        )
    keepalive = KeepAliveTransport(max_connections=max_connections)
    return DriverClient(keepalive, base_url=base_url, headers=dict(headers), timeout=timeout)


class DriverClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` over a ``KeepAliveTransport`` the driver may call directly."""

    def __init__(
        self,
        keepalive: KeepAliveTransport,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout = _DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(
            transport=keepalive, base_url=base_url, headers=dict(headers or {}), timeout=timeout
        )
        self.keepalive = keepalive
