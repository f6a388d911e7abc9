from pytest_aiohttp import AiohttpClient

from postbox.mailbox.app import Settings, create_app


async def test_healthz_answers(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(create_app(Settings()))
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
