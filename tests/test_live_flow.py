"""Flow control of one live connection: a client that cannot keep up is cut off, never waited for. The outbound
queue is bounded in UTF-8 bytes, not in messages."""

from __future__ import annotations

import pytest

from server.auth import Grant
from server.live import Connection, LiveLimits, TokenBucket

pytestmark = pytest.mark.anyio


def connection(outbound_bytes: int) -> Connection:
    grant = Grant("t1", "c1", "editor", "")
    return Connection(None, "c1", grant, "u", "U", "#000000", LiveLimits(outbound_bytes=outbound_bytes))  # type: ignore[arg-type]


def queued(conn: Connection) -> list[str | None]:
    return [message for message, _ in conn.outbox]


async def test_events_held_during_catch_up_are_released_once_and_in_order():
    conn = connection(100)
    conn.send_event(5, "e5")
    conn.send_event(6, "e6")
    assert not conn.outbox and conn.held == [(5, "e5"), (6, "e6")]
    conn.catching_up = False
    conn.last_seq = 6
    conn.send_event(6, "e6 again")  # a duplicate of what the welcome covered: dropped
    conn.send_event(7, "e7")
    assert queued(conn) == ["e7"]


async def test_a_client_whose_queue_would_pass_its_byte_bound_is_cut_off_without_blocking():
    conn = connection(8)  # four two-byte messages
    conn.catching_up = False
    for seq in range(1, 5):
        conn.send_event(seq, f"e{seq}")
    assert not conn.cut_off and len(conn.outbox) == 4 and conn.queued_bytes == 8
    conn.send_event(5, "e5")  # two bytes too many: the queue is dropped and the sender told to close (4008)
    assert conn.cut_off
    assert queued(conn) == [None] and conn.queued_bytes == 0
    assert conn.send("later") is False  # nothing more is queued for it
    assert conn.last_seq == 4  # what it was sent: its reconnect resumes from here


async def test_bytes_are_counted_in_utf8():
    conn = connection(10)
    assert conn.send("é" * 5)  # ten bytes, five characters
    assert conn.queued_bytes == 10
    assert not conn.send("x")  # one byte past the bound
    assert conn.cut_off


async def test_one_message_larger_than_the_bound_goes_out_alone():
    conn = connection(10)
    assert conn.send("w" * 50) and not conn.cut_off  # a welcome with a big state: nothing else was queued
    assert not conn.send("e") and conn.cut_off  # but nothing may queue behind it past the bound


async def test_busy_clients_skip_lossy_messages():
    conn = connection(10)
    conn.send("m0")
    conn.send("m1")
    assert not conn.busy()  # four bytes of ten
    conn.send("m2")
    assert conn.busy()  # six bytes: more than half the bound


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=0.0, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_budget_can_go_into_debt_and_pays_it_back_first():
    bucket = TokenBucket(rate=0.0, burst=10)
    assert bucket.spend(25)  # a message to 25 recipients still goes out while any budget is left
    assert not bucket.spend(1) and not bucket.take()  # then nothing until the debt is paid
