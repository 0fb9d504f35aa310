"""A tiny ASGI app whose handler takes DELAY_S; tests commit copies with another delay.

Used by the baseline and CI dry-run tests: the "code change" on a branch is this file written
again with a larger DELAY_S (see ``webapp_source``).
"""

import asyncio

DELAY_S = 0.004


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/work":
        await asyncio.sleep(DELAY_S)
    timing = f"total;dur={DELAY_S * 1000:.3f}".encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"server-timing", timing)]}
    )
    await send({"type": "http.response.body", "body": b"ok"})
