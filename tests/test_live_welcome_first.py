"""The welcome is a connection's first message: render news and presence that reach a connection while its
welcome is being made (a render in progress when it joins) are held back and follow the welcome."""

from __future__ import annotations

from typing import Any

from server.live import HELD_NEWS, Connection, LiveLimits


def _connection() -> Connection:
    grant: Any = object()
    return Connection(websocket=None, canvas_id="c", grant=grant, user="u", name="U", colour="#123456",  # type: ignore[arg-type]
                      limits=LiveLimits())  # fmt: skip


def _queued(connection: Connection) -> list[str | None]:
    return [message for message, _ in connection.outbox]


def test_news_before_the_welcome_follows_it() -> None:
    connection = _connection()
    assert connection.send_news('{"type":"progress","step":3}')  # a render runs while the welcome is made
    assert _queued(connection) == []
    connection.send('{"type":"welcome"}')
    connection.catching_up = False
    while connection.held_news:
        connection.send(connection.held_news.popleft())
    assert _queued(connection) == ['{"type":"welcome"}', '{"type":"progress","step":3}']
    assert connection.send_news('{"type":"presence"}') and _queued(connection)[-1] == '{"type":"presence"}'


def test_held_news_is_bounded_keeping_the_latest() -> None:
    connection = _connection()
    for step in range(HELD_NEWS + 10):
        connection.send_news(f'{{"type":"progress","step":{step}}}')
    assert len(connection.held_news) == HELD_NEWS and connection.held_news[-1].endswith(f"{HELD_NEWS + 9}}}")
