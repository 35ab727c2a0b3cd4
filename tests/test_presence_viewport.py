"""Presence carries an optional `viewport` {x, y, zoom} (what someone following that person sees): checked,
dropped when it does not fit, relayed to the others like the cursor."""

from __future__ import annotations

import math

import pytest

from server.protocol import Presence, PresenceMessage, parse_inbound
from tests.test_live import canvas, join, server  # noqa: F401 - fixtures


def viewport_of(value) -> dict | None:
    return parse_inbound({"type": "presence", "cursor": None, "viewport": value}).viewport


def test_a_viewport_is_three_bounded_finite_numbers():
    assert viewport_of({"x": 12, "y": -3.5, "zoom": 2}) == {"x": 12.0, "y": -3.5, "zoom": 2.0}
    assert viewport_of(None) is None
    assert parse_inbound({"type": "presence", "cursor": None}) == PresenceMessage(None, None, None)


@pytest.mark.parametrize(
    "value",
    [
        {"x": 1, "y": 2},  # no zoom
        {"x": 1, "y": 2, "zoom": 0},
        {"x": 1, "y": 2, "zoom": 1e6},
        {"x": 1, "y": 2, "zoom": math.nan},
        {"x": 1, "y": 2, "zoom": math.inf},
        {"x": 1, "y": 2, "zoom": True},
        {"x": 1, "y": 2, "zoom": "2"},
        {"x": math.inf, "y": 2, "zoom": 1},
        {"x": 1e8, "y": 2, "zoom": 1},
        {"x": "1", "y": 2, "zoom": 1},
        [1, 2, 1],
        "1,2,1",
    ],
)
def test_a_viewport_that_does_not_fit_is_dropped_not_refused(value):
    assert viewport_of(value) is None


def test_the_others_receive_the_viewport_beside_the_cursor():
    message = Presence("u", "c", "Ada", "#ff0000", None, "L1", {"x": 1.0, "y": 2.0, "zoom": 0.5}).to_json()
    assert message["viewport"] == {"x": 1.0, "y": 2.0, "zoom": 0.5} and message["selected_layer"] == "L1"
    assert Presence("u", "c", "Ada", "#ff0000", None, None).to_json()["viewport"] is None


@pytest.mark.anyio
@pytest.mark.slow
async def test_a_viewport_is_relayed_and_given_to_later_arrivals(server, canvas):  # noqa: F811
    canvas_id, owner = canvas
    alice = await join(server, canvas_id, owner, user="alice", name="Alice")
    bob = await join(server, canvas_id, owner, user="bob", name="Bob")
    await alice.send({"type": "presence", "cursor": None, "selected_layer": None,
                      "viewport": {"x": 256, "y": 128, "zoom": 1.5}})  # fmt: skip
    seen = await bob.until(lambda m: m["type"] == "presence" and m.get("viewport"))
    assert seen["viewport"] == {"x": 256.0, "y": 128.0, "zoom": 1.5} and seen["name"] == "Alice"
    carol = await join(server, canvas_id, owner, user="carol")
    assert carol.welcome["presence"][0]["viewport"] == {"x": 256.0, "y": 128.0, "zoom": 1.5}
    for peer in (alice, bob, carol):
        await peer.close()
