"""Flow control of one live connection: a client that cannot keep up is cut off, never waited for."""

from __future__ import annotations

import pytest

from server.auth import Grant
from server.live import Connection, LiveLimits, TokenBucket

pytestmark = pytest.mark.anyio


def connection(queue: int) -> Connection:
    grant = Grant("t1", "c1", "editor", "")
    return Connection(None, "c1", grant, "u", "U", "#000000", LiveLimits(outbound_queue=queue))  # type: ignore[arg-type]


async def test_events_held_during_catch_up_are_released_once_and_in_order():
    conn = connection(10)
    conn.send_event(5, "e5")
    conn.send_event(6, "e6")
    assert conn.outbox.empty() and conn.held == [(5, "e5"), (6, "e6")]
    conn.catching_up = False
    conn.last_seq = 6
    conn.send_event(6, "e6 again")  # a duplicate of what the welcome covered: dropped
    conn.send_event(7, "e7")
    assert [conn.outbox.get_nowait()] == ["e7"]


async def test_a_client_whose_queue_overflows_is_cut_off_without_blocking():
    conn = connection(4)
    conn.catching_up = False
    for seq in range(1, 5):
        conn.send_event(seq, f"e{seq}")
    assert not conn.cut_off and conn.outbox.qsize() == 4
    conn.send_event(5, "e5")  # one too many: the queue is dropped and the sender told to close (4008)
    assert conn.cut_off
    assert conn.outbox.get_nowait() is None and conn.outbox.empty()
    assert conn.send("later") is False  # nothing more is queued for it
    assert conn.last_seq == 4  # what it was sent: its reconnect resumes from here


async def test_busy_clients_skip_lossy_messages():
    conn = connection(10)
    for index in range(6):
        conn.send(f"m{index}")
    assert conn.busy()


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=0.0, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
