"""The SSE response's own guards (no engine, no sockets): a client that stops reading is dropped."""

from __future__ import annotations

import asyncio

from dsdeploy.serve.app import SSEResponse


def test_stream_to_a_client_that_reads_nothing_is_dropped():
    async def main():
        gone: list[int] = []
        sent: list[dict] = []

        async def body(send_frames) -> None:
            for _ in range(100):
                await send_frames(b"data: x\n\n")

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "http.response.body":
                await asyncio.Event().wait()  # the client's receive window stays full

        async def receive() -> dict:
            await asyncio.Event().wait()
            return {}

        response = SSEResponse(body, lambda: gone.append(1), {}, write_timeout=0.2)
        await asyncio.wait_for(response({"type": "http"}, receive, send), 5)
        assert gone == [1]  # the job behind the stream is cancelled
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]

    asyncio.run(main())


def test_stream_to_a_reading_client_completes():
    async def main():
        gone: list[int] = []
        sent: list[dict] = []

        async def body(send_frames) -> None:
            for _ in range(3):
                await send_frames(b"data: x\n\n")

        async def send(message: dict) -> None:
            sent.append(message)

        async def receive() -> dict:
            await asyncio.Event().wait()
            return {}

        await SSEResponse(body, lambda: gone.append(1), {}, write_timeout=0.2)({"type": "http"}, receive, send)
        assert (
            gone == []
            and len(sent) == 5
            and sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
        )

    asyncio.run(main())
