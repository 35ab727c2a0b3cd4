"""The WebSocket protocol's messages are classes (server/protocol.py), one per message in and out, and every one
is written down in docs/protocol.md."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from server.core.events import Event, LayerRenamed
from server.live import EventFrame, LiveHub
from server.protocol import (
    INBOUND,
    OUTBOUND,
    Ack,
    CommandMessage,
    GetStateMessage,
    Hello,
    PingMessage,
    PresenceMessage,
    ProtocolError,
    Welcome,
    parse_inbound,
)

DOC = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()


@pytest.mark.parametrize("kind", sorted({*INBOUND, *OUTBOUND}))
def test_every_message_is_documented(kind):
    assert re.search(rf"[`\"]{re.escape(kind)}[`\" ]", DOC), f"docs/protocol.md says nothing of {kind!r}"


def test_each_inbound_message_parses_to_its_class():
    assert parse_inbound({"type": "ping", "t": [1]}) == PingMessage([1])
    assert parse_inbound({"type": "get_state"}) == GetStateMessage(None)
    presence = parse_inbound({"type": "presence", "cursor": {"x": 1, "y": "2"}, "selected_layer": "L" * 129})
    assert presence == PresenceMessage(None, None)
    command = parse_inbound({"type": "command", "command_id": 7, "command": {"type": "undo"}})
    assert command == CommandMessage(None, {"command_id": 7, "command": {"type": "undo"}})
    hello = parse_inbound({"type": "hello", "token": "t", "since": 3, "user": ["x"], "name": "Ada"})
    assert hello == Hello("t", 3, "", "Ada", "")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "teleport"}, "unknown_type"),
        ({"type": "hello", "since": -1}, "bad_hello"),
        ({"type": "hello", "since": True}, "bad_hello"),
        ({"type": "get_state", "version": "3"}, "bad_version"),
    ],
)
def test_a_message_that_does_not_fit_its_class_is_refused_with_a_code(message, code):
    with pytest.raises(ProtocolError) as info:
        parse_inbound(message)
    assert info.value.code == code


def test_outbound_messages_encode_as_the_protocol_says():
    assert orjson.loads(Ack("k", [4], 4, False).encode()) == {"type": "ack", "command_id": "k", "seqs": [4],
                                                               "version": 4, "duplicate": False}  # fmt: skip
    welcome = orjson.loads(Welcome("c1", {"user": "u", "conn": "x", "role": "owner"}, [], 5, events=[]).encode())
    assert welcome["type"] == "welcome" and welcome["events"] == [] and "state" not in welcome
    assert "queue" not in welcome  # no render worker: no queue


def test_every_message_after_the_hello_has_its_handler():
    hub = LiveHub(service=_Service(), tokens=None, renders=None)  # type: ignore[arg-type]
    assert {cls.type for cls in hub._dispatch} == set(INBOUND) - {"hello"}


def test_an_event_frame_knows_its_seq_without_being_read_back():
    event = Event("c1", 12, "e", LayerRenamed("L1", "Sky"), "u", None, 0.0)
    frame = EventFrame.of(event)
    assert (
        frame.seq == 12
        and orjson.loads(str(frame))["seq"] == 12
        and orjson.loads(str(frame))["event"]["type"] == "layer.renamed"
    )
    source = (Path(__file__).resolve().parents[1] / "server" / "live.py").read_text()
    assert "EVENT_PREFIX" not in source and "message.index(" not in source


class _Service:
    def subscribe(self, listener):
        return lambda: None
