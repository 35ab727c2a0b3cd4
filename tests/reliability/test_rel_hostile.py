"""Hostile input against a real server: hand-picked attacks with exact expected answers, then hypothesis
fuzzing of the WebSocket protocol and the HTTP commands.

Every message gets a clear answer (an `error` / `reject` frame with a code, or a 4xx JSON error), the server
stays up, and the log changes only by the events of the commands it acknowledged.

The server runs with `--no-render`: a fuzzed but valid `txt2img` at 2048 px would otherwise keep the CPU busy
for minutes; rendering is not what is under test here (test_rel_engine.py is about that).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import string
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.reliability.relsupport import assert_gapless, health, read_log, record_figures, start_server

pytestmark = pytest.mark.slow

WS_EXAMPLES = int(os.environ.get("OPENDREAM_FUZZ_WS_EXAMPLES", "1000"))
HTTP_EXAMPLES = int(os.environ.get("OPENDREAM_FUZZ_HTTP_EXAMPLES", "600"))
MAX_REPLY = 4096  # an error message that echoes a megabyte back is not a clear error
FUZZ: dict[str, Any] = dict(
    deadline=None,
    database=None,  # nothing written into the working tree
    derandomize=os.environ.get("OPENDREAM_FUZZ_RANDOM") != "1",  # reproducible in CI unless asked otherwise
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
REPLY_TYPES = {"ack", "reject", "error", "event", "state", "pong", "presence", "presence_left"}
_ids = itertools.count()


class Canvas:
    """A canvas set up for attacks: root (blank) <- a (img2img) <- b (img2img), and `gone` deleted."""

    def __init__(self, server: Any, name: str) -> None:
        self.server = server
        with server.client() as client:
            created = client.post("/api/canvases", json={"name": name}).json()
            self.id, self.token = created["id"], created["owner_token"]
            for layer_id, operation, params in [
                ("root", "blank", {"width": 8, "height": 8}),
                ("a", "img2img", {"source": "root", "prompt": "a"}),
                ("b", "img2img", {"source": "a", "prompt": "b"}),
                ("gone", "blank", {"width": 8, "height": 8}),
            ]:
                self.post(client, {"type": "add_layer", "layer_id": layer_id, "operation": operation, "params": params})
            self.post(client, {"type": "delete_layer", "layer_id": "gone"})
        self.setup_seqs = {event["seq"] for event in read_log(server, self.id)}
        self.acked: set[int] = set()

    def post(self, client: httpx.Client, command: dict[str, Any]) -> None:
        response = client.post(f"/api/canvases/{self.id}/commands",
                               json={"command_id": f"setup-{next(_ids)}", "command": command})  # fmt: skip
        assert response.status_code == 200, response.text

    def check_log(self) -> int:
        """The log holds the set-up and exactly the acknowledged events: nothing else got in."""
        log = read_log(self.server, self.id)
        assert_gapless(log)
        assert {event["seq"] for event in log} == self.setup_seqs | self.acked, "the log changed without an ack"
        return len(log)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("hostile") / "data", "--no-render")
    yield running
    running.stop()


# --- the WebSocket side ---------------------------------------------------------------------------------


class Socket:
    """A live connection that reconnects before the per-connection rate limit could answer instead of the server
    logic under test."""

    def __init__(self, server: Any, canvas: Canvas) -> None:
        self.server, self.canvas = server, canvas
        self.ws: ClientConnection | None = None
        self.stack = contextlib.ExitStack()
        self.sent = 0
        self.connections = 0

    def open(self) -> ClientConnection:
        if self.ws is None or self.sent > 150:
            self.close()
            self.ws = self.stack.enter_context(connect(
                f"ws://127.0.0.1:{self.server.port}/ws/canvases/{self.canvas.id}", max_size=2**24, open_timeout=20))  # fmt: skip
            self.ws.send(json.dumps({"type": "hello", "token": self.canvas.token, "user": "mallory"}))
            welcome = orjson.loads(self.ws.recv(timeout=20))
            assert welcome["type"] == "welcome", welcome
            self.sent, self.connections = 0, self.connections + 1
        return self.ws

    def close(self) -> None:
        self.stack.close()  # closes the socket, if one is open
        self.ws = None

    def exchange(self, frame: str | bytes, *, text: bool | None = None) -> list[dict[str, Any]]:
        """Send one frame, then a ping; return every message that came back before the pong."""
        try:
            return self._exchange(frame, text)
        except ConnectionClosed:
            self.ws = None  # the server dropped us: that is the failure; the next example starts afresh
            raise

    def _exchange(self, frame: str | bytes, text: bool | None) -> list[dict[str, Any]]:
        ws = self.open()
        sentinel = f"sentinel-{next(_ids)}"
        ws.send(frame, text=text)
        ws.send(json.dumps({"type": "ping", "t": sentinel}))
        self.sent += 2
        replies: list[dict[str, Any]] = []
        while True:
            raw = ws.recv(timeout=20)
            assert isinstance(raw, str)
            assert len(raw) < MAX_REPLY or orjson.loads(raw)["type"] in ("event", "state"), raw[:200]
            message = orjson.loads(raw)
            assert message.get("type") in REPLY_TYPES, message
            if message["type"] == "pong" and message.get("t") == sentinel:
                return replies
            replies.append(message)


def answers(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [reply for reply in replies if reply["type"] in ("ack", "reject", "error", "state", "pong")]


def expect_one(replies: list[dict[str, Any]], kind: str, code: str | None = None) -> dict[str, Any]:
    found = answers(replies)
    assert len(found) == 1, replies
    assert found[0]["type"] == kind, found
    if code is not None:
        assert found[0]["code"] == code, found
    if kind in ("reject", "error"):
        assert isinstance(found[0]["code"], str) and found[0]["code"]
        assert isinstance(found[0]["message"], str) and found[0]["message"]
    return found[0]


def command(body: dict[str, Any], **envelope: Any) -> str:
    return json.dumps({"type": "command", "command_id": f"h-{next(_ids)}", "command": body, **envelope})


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


HUGE = "x" * 900_000
ATTACKS: list[tuple[str, str | bytes, str, str | None]] = [
    # (what, frame, expected reply type, expected code)
    ("binary frame", b"\x00\x01binary", "error", "malformed"),
    ("empty text", "", "error", "malformed"),
    ("not JSON", "{'type': 'command'", "error", "malformed"),
    ("a JSON list", "[1, 2, 3]", "error", "malformed"),
    ("a JSON string", '"command"', "error", "malformed"),
    ("type is not a string", '{"type": 7}', "error", "malformed"),
    ("lone surrogate", '{"type": "ping", "t": "\\ud800"}', "error", "malformed"),
    ("NaN", '{"type": "ping", "t": NaN}', "error", "malformed"),
    ("nesting beyond the parser's depth", '{"type": "ping", "t": ' + nested(5000) + "}", "error", "malformed"),
    ("nesting beyond the encoder's depth", '{"type": "ping", "t": ' + nested(600) + "}", "error", "malformed"),
    ("unknown type", '{"type": "format_disk"}', "error", "unknown_type"),
    ("a huge unknown type", json.dumps({"type": HUGE}), "error", "unknown_type"),
    ("a second hello", '{"type": "hello", "token": "x"}', "error", "unknown_type"),
    ("command without id", json.dumps({"type": "command", "command": {"type": "undo"}}), "reject", "malformed_command"),
    ("command id not a string", json.dumps({"type": "command", "command_id": 5, "command": {"type": "undo"}}),
     "reject", "malformed_command"),
    ("command id too long", json.dumps({"type": "command", "command_id": "i" * 129, "command": {"type": "undo"}}),
     "reject", "malformed_command"),
    ("unknown command", command({"type": "drop_table"}), "reject", "malformed_command"),
    ("an engine-only command", command({"type": "record_render", "layer_id": "root", "revision": 1, "output": "0" * 64,
                                        "width": 8, "height": 8, "fingerprint": {}, "duration_ms": 1}),
     "reject", "malformed_command"),
    ("a forged failure", command({"type": "record_failure", "layer_id": "root", "revision": 1, "reason": "x"}),
     "reject", "malformed_command"),
    ("extra field", command({"type": "undo", "sudo": True}), "reject", "malformed_command"),
    ("wrong type of field", command({"type": "set_visibility", "layer_id": "root", "visible": "yes please"}),
     "reject", "malformed_command"),
    ("huge number", command({"type": "move_layer", "layer_id": "root", "index": 10**30}), "reject", "malformed_command"),
    ("huge float", command({"type": "set_opacity", "layer_id": "root", "opacity": 1e308}), "reject", "malformed_command"),
    ("negative expected version", command({"type": "undo"}, expected_version=-1), "reject", "malformed_command"),
    ("stale expected version", command({"type": "rename_canvas", "name": "n"}, expected_version=1), "reject",
     "version_conflict"),
    ("huge name", command({"type": "rename_canvas", "name": HUGE}), "reject", "malformed_command"),
    ("huge prompt", command({"type": "add_layer", "operation": "txt2img", "params": {"prompt": HUGE}}), "reject",
     "invalid_params"),
    ("deep params", command({"type": "add_layer", "operation": "txt2img", "params": json.loads(nested(900))}),
     "reject", "malformed_command"),
    ("params just deep enough", command({"type": "add_layer", "operation": "txt2img", "params": json.loads(nested(31))}),
     "reject", "invalid_params"),
    ("huge width", command({"type": "add_layer", "operation": "txt2img", "params": {"width": 10**12}}), "reject",
     "invalid_params"),
    ("unknown operation", command({"type": "add_layer", "operation": "rm -rf", "params": {}}), "reject",
     "unknown_operation"),
    ("missing layer", command({"type": "delete_layer", "layer_id": "missing"}), "reject", "unknown_layer"),
    ("deleted layer", command({"type": "set_opacity", "layer_id": "gone", "opacity": 0.5}), "reject", "unknown_layer"),
    ("input from a deleted layer", command({"type": "add_layer", "operation": "img2img", "params": {"source": "gone"}}),
     "reject", "unknown_layer"),
    ("input from a missing layer", command({"type": "add_layer", "operation": "img2img",
                                            "params": {"source": "nowhere"}}), "reject", "unknown_layer"),
    ("reusing a deleted id", command({"type": "add_layer", "layer_id": "gone", "operation": "blank", "params": {}}),
     "reject", "layer_exists"),
    ("taking an existing id", command({"type": "add_layer", "layer_id": "a", "operation": "blank", "params": {}}),
     "reject", "layer_exists"),
    ("an edit that changes nothing", command({"type": "change_params", "layer_id": "root",
                                              "params": {"width": 8, "height": 8}}), "ack", None),
    ("params nested deeper than any operation reads", command({"type": "change_params", "layer_id": "root",
                                                               "params": json.loads(nested(300))}), "reject",
     "malformed_command"),
    ("a two-layer cycle", command({"type": "change_params", "layer_id": "a", "params": {"source": "b"}}), "reject",
     "cycle"),
    ("reading itself", command({"type": "change_params", "layer_id": "a", "params": {"source": "a"}}), "reject",
     "cycle"),
    ("a layer id that is a path", command({"type": "add_layer", "layer_id": "../../etc/passwd", "operation": "blank",
                                           "params": {}}), "reject", "malformed_command"),
    ("restore to version 0", command({"type": "restore", "version": 0}), "reject", "malformed_command"),
    ("restore to the future", command({"type": "restore", "version": 10**6}), "reject", "bad_version"),
    ("nothing to redo", command({"type": "redo"}), "reject", "nothing_to_redo"),
    ("state of a bad version", '{"type": "get_state", "version": "latest"}', "error", "bad_version"),
    ("state of the future", '{"type": "get_state", "version": 1000000}', "error", "bad_version"),
    ("state of a negative version", '{"type": "get_state", "version": -1}', "error", "bad_version"),
    ("cancel without a renderer", '{"type": "cancel", "layer_id": "root"}', "error", "cannot_cancel"),
    ("ping echoes", json.dumps({"type": "ping", "t": {"nested": [1, 2, 3]}}), "pong", None),
    ("presence with garbage", json.dumps({"type": "presence", "cursor": {"x": "NaN", "y": [1]},
                                          "selected_layer": HUGE[:10_000]}), "none", None),
]  # fmt: skip


def test_hand_picked_attacks_get_clear_answers(server):
    canvas = Canvas(server, "Attacks")
    socket = Socket(server, canvas)
    results: dict[str, str] = {}
    try:
        for what, frame, kind, code in ATTACKS:
            replies = socket.exchange(frame)
            if kind == "none":
                assert answers(replies) == [], (what, replies)
                continue
            reply = expect_one(replies, kind, code)
            if reply["type"] == "ack":
                canvas.acked.update(reply["seqs"])
            results[what] = reply.get("code") or reply["type"]
        # Invalid UTF-8 in a text frame breaks the WebSocket protocol itself: the connection is closed (1007).
        ws = socket.open()
        ws.send(b'{"type": "ping", "t": "\xff\xfe"}', text=True)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=20)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        socket.ws = None
    finally:
        socket.close()
    assert health(server)
    canvas.check_log()
    record_figures("hostile_hand_picked", {"attacks": len(ATTACKS) + 1})


@pytest.mark.parametrize("how", ["one frame", "fragments", "compressed"])
def test_oversized_frames_close_the_connection_not_the_server(server, how):
    canvas = Canvas(server, f"Oversized {how}")
    compression = "deflate" if how == "compressed" else None
    with connect(f"ws://127.0.0.1:{server.port}/ws/canvases/{canvas.id}", max_size=2**24, compression=compression,
                 open_timeout=20) as ws:  # fmt: skip
        ws.send(json.dumps({"type": "hello", "token": canvas.token}))
        assert orjson.loads(ws.recv(timeout=20))["type"] == "welcome"
        body = json.dumps({"type": "command", "command_id": "big",
                           "command": {"type": "rename_canvas", "name": "n" * (2 * 1024 * 1024)}})  # fmt: skip
        with pytest.raises(ConnectionClosed) as closed:
            if how == "fragments":  # 2 MiB in 2,048 continuation frames: the limit holds across fragments
                ws.send(body[i : i + 1024] for i in range(0, len(body), 1024))
            else:  # "compressed": 2 MiB that deflate to a few KiB on the wire
                ws.send(body)
            while True:
                ws.recv(timeout=20)
    if how != "compressed" and closed.value.rcvd is None:
        pass  # the server closed while the frame was still being written: the TCP reset can overtake its 1009
    else:
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
    assert health(server)
    canvas.check_log()


# --- hypothesis: the WebSocket protocol ------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_any = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)
layer_ids = st.one_of(
    st.sampled_from(["root", "a", "b", "gone", "missing", "", "L" * 129, "../../etc/passwd", "a b", "a\x00b"]),
    st.text(alphabet=string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=12),
)
names = st.one_of(st.text(max_size=60), st.sampled_from(["", "n" * 201, "\x00", "<script>alert(1)</script>"]))
numbers = st.one_of(
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**30, 1e308, 0.5]),
)
operations = st.sampled_from(["txt2img", "img2img", "blank", "crop", "adjust", "mask", "upload", "composite",
                              "layer_output", "nope", "", "TXT2IMG", "../txt2img"])  # fmt: skip
plausible_params = st.one_of(
    st.fixed_dictionaries({}, optional={"prompt": names, "width": numbers, "height": numbers, "steps": numbers,
                                        "guidance": numbers, "scheduler": st.text(max_size=10)}),
    st.fixed_dictionaries({"source": layer_ids}, optional={"prompt": names, "strength": numbers, "steps": numbers}),
    st.fixed_dictionaries({}, optional={"width": numbers, "height": numbers, "colour": st.text(max_size=10)}),
    st.dictionaries(st.text(max_size=10), json_any, max_size=4),
)  # fmt: skip
known_layers = st.sampled_from(["root", "a", "b", "gone", "missing"])
short_names = st.text(alphabet=string.ascii_letters + " -", min_size=1, max_size=20)
sane_commands = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("add_layer"),
            "operation": st.just("blank"),
            "params": st.fixed_dictionaries({"width": st.integers(1, 64), "height": st.integers(1, 64)}),
        },
        optional={"layer_id": st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6), "name": short_names},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("add_layer"),
            "operation": st.just("img2img"),
            "params": st.fixed_dictionaries({"source": known_layers, "prompt": short_names}),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("change_params"),
            "layer_id": known_layers,
            "params": st.fixed_dictionaries({"source": known_layers, "prompt": short_names}),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("set_opacity"), "layer_id": known_layers, "opacity": st.floats(min_value=0, max_value=1)}
    ),
    st.fixed_dictionaries({"type": st.just("set_visibility"), "layer_id": known_layers, "visible": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("rename_layer"), "layer_id": known_layers, "name": short_names}),
    st.fixed_dictionaries({"type": st.just("move_layer"), "layer_id": known_layers, "index": st.integers(0, 6)}),
    st.fixed_dictionaries({"type": st.just("rename_canvas"), "name": short_names}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["undo", "redo", "delete_layer", "retry_render"]), "layer_id": known_layers}
    ).map(lambda c: c if c["type"] in ("delete_layer", "retry_render") else {"type": c["type"]}),
    st.fixed_dictionaries({"type": st.just("restore"), "version": st.integers(1, 30)}),
)
client_commands = st.one_of(
    *[sane_commands] * 8,
    st.fixed_dictionaries({"type": st.just("add_layer"), "operation": operations, "params": plausible_params},
                          optional={"layer_id": layer_ids, "name": names, "seed": numbers}),
    st.fixed_dictionaries({"type": st.just("change_params"), "layer_id": layer_ids, "params": plausible_params},
                          optional={"seed": numbers}),
    st.fixed_dictionaries({"type": st.sampled_from(["delete_layer", "retry_render"]), "layer_id": layer_ids}),
    st.fixed_dictionaries({"type": st.just("set_visibility"), "layer_id": layer_ids, "visible": json_leaf}),
    st.fixed_dictionaries({"type": st.just("set_opacity"), "layer_id": layer_ids, "opacity": numbers}),
    st.fixed_dictionaries({"type": st.just("rename_layer"), "layer_id": layer_ids, "name": names}),
    st.fixed_dictionaries({"type": st.just("move_layer"), "layer_id": layer_ids, "index": numbers}),
    st.fixed_dictionaries({"type": st.just("rename_canvas"), "name": names}),
    st.fixed_dictionaries({"type": st.sampled_from(["undo", "redo"])}),
    st.fixed_dictionaries({"type": st.just("restore"), "version": numbers}),
    st.fixed_dictionaries({"type": st.text(max_size=20)}),
    st.dictionaries(st.text(max_size=10), json_any, max_size=5),
    json_any,
)  # fmt: skip
good_ids = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=16).map(lambda s: f"fz-{s}")
command_messages = st.one_of(
    st.fixed_dictionaries({"type": st.just("command"), "command": client_commands, "command_id": good_ids}),
    st.fixed_dictionaries({"type": st.just("command"), "command": client_commands},
                          optional={"command_id": st.one_of(good_ids, st.text(max_size=200), json_any),
                                    "expected_version": st.one_of(numbers, json_leaf, st.integers(0, 40))}),
)  # fmt: skip
other_messages = st.one_of(
    st.fixed_dictionaries({"type": st.just("presence")}, optional={"cursor": json_any, "selected_layer": json_any}),
    st.fixed_dictionaries({"type": st.just("get_state")}, optional={"version": st.one_of(numbers, json_leaf)}),
    st.fixed_dictionaries({"type": st.just("cancel")}, optional={"layer_id": json_any}),
    st.fixed_dictionaries({"type": st.just("ping")}, optional={"t": json_any}),
    st.fixed_dictionaries({"type": st.text(max_size=30)}, optional={"payload": json_any}),
    st.dictionaries(st.text(max_size=10), json_any, max_size=4),
    json_any,
)  # fmt: skip
frames = st.one_of(
    command_messages.map(lambda m: ("json", m)),
    command_messages.map(lambda m: ("json", m)),
    other_messages.map(lambda m: ("json", m)),
    st.text(max_size=200).map(lambda t: ("text", t)),
    st.binary(max_size=200).map(lambda b: ("binary", b)),
    st.integers(min_value=1, max_value=3000).map(lambda depth: ("text", '{"type": "ping", "t": ' + nested(depth) + "}")),
    st.integers(min_value=1000, max_value=600_000).map(lambda n: ("json", {"type": "command", "command_id": f"big-{n}",
                                                                           "command": {"type": "rename_canvas",
                                                                                       "name": "n" * n}})),
)  # fmt: skip


def fresh_id(frame: Any) -> Any:
    """Most generated commands get an id never used before (hypothesis would otherwise reuse `fz-0` for
    everything, and the server would, rightly, refuse most of them as `command_id_reused`)."""
    if isinstance(frame, dict) and isinstance(frame.get("command_id"), str) and frame["command_id"].startswith("fz-"):
        return {**frame, "command_id": f"{frame['command_id']}-{next(_ids)}"}
    return frame


def expected_reply(kind: str, frame: Any) -> str | None:
    """What one frame must be answered with: 'error', 'command' (ack or reject), 'state-or-error', 'pong-or-error'
    or None (presence: nothing to the sender)."""
    if kind in ("binary", "text"):
        try:
            message = orjson.loads(frame) if kind == "text" else None
        except orjson.JSONDecodeError:
            return "error"
        if message is None and kind == "binary":
            return "error"
        frame = message
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return "error"
    # A ping's `t` comes back, unless it nests deeper than the encoder goes (then: an error saying so).
    return {"command": "command", "presence": None, "get_state": "state-or-error", "ping": "pong-or-error"}.get(
        frame["type"], "error"
    )


@pytest.fixture(scope="module")
def fuzz_canvas(server):
    return Canvas(server, "Fuzzed over WebSocket")


def test_fuzzing_the_websocket_protocol(server, fuzz_canvas):
    socket = Socket(server, fuzz_canvas)
    tally: dict[str, int] = {}

    @settings(max_examples=WS_EXAMPLES, **FUZZ)
    @given(frames, st.integers(0, 3))
    def one(generated: tuple[str, Any], reuse: int) -> None:
        kind, frame = generated
        frame = frame if reuse == 0 else fresh_id(frame)
        data = frame if kind in ("text", "binary") else json.dumps(frame)
        replies = socket.exchange(data)
        expected = expected_reply(kind, frame)
        found = answers(replies)
        if expected is None:
            assert found == [], replies
            outcome = "silent"
        elif expected == "command":
            assert len(found) == 1 and found[0]["type"] in ("ack", "reject"), replies
            sent_id = (frame if kind == "json" else orjson.loads(frame)).get("command_id")
            assert found[0]["command_id"] == (sent_id if isinstance(sent_id, str) else None) or found[0]["code"] in (
                "malformed_command",
            ), (found, sent_id)
            if found[0]["type"] == "ack":
                fuzz_canvas.acked.update(found[0]["seqs"])
                events = [reply["seq"] for reply in replies if reply["type"] == "event"]
                assert events == ([] if found[0]["duplicate"] else found[0]["seqs"]), replies
            outcome = found[0]["type"] if found[0]["type"] == "ack" else f"reject:{found[0]['code']}"
        elif expected in ("state-or-error", "pong-or-error"):
            assert len(found) == 1 and found[0]["type"] in (expected.split("-")[0], "error"), replies
            outcome = found[0]["type"]
        else:
            assert len(found) == 1 and found[0]["type"] == expected, replies
            outcome = found[0]["type"] if expected != "error" else f"error:{found[0]['code']}"
        for reply in found:
            if reply["type"] in ("error", "reject"):
                assert isinstance(reply["code"], str) and isinstance(reply["message"], str) and reply["message"]
        tally[outcome] = tally.get(outcome, 0) + 1

    try:
        one()
    finally:
        socket.close()
    assert health(server)
    head = fuzz_canvas.check_log()
    record_figures("fuzz_websocket", {"examples": sum(tally.values()), "outcomes": tally, "log_head": head,
                                      "connections": socket.connections})  # fmt: skip
    assert sum(tally.values()) >= min(WS_EXAMPLES, 100)
    assert tally.get("ack", 0) > 0 and any(key.startswith("reject:") for key in tally), tally  # both sides exercised


# --- hypothesis: HTTP ------------------------------------------------------------------------------------

bodies = st.one_of(
    *[command_messages.map(lambda m: json.dumps({k: v for k, v in m.items() if k != "type"}).encode())] * 4,
    json_any.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.integers(min_value=1, max_value=3000).map(lambda depth: nested(depth).encode()),
)
query_values = st.one_of(
    st.text(max_size=30), numbers.map(str), st.sampled_from(["", "-0", "1e3", "0x10", "\uff11\uff12"])
)
user_headers = st.one_of(st.text(alphabet=string.printable.strip(), max_size=80), st.just("ada"))


@pytest.fixture(scope="module")
def http_canvas(server):
    return Canvas(server, "Fuzzed over HTTP")


def test_fuzzing_the_http_commands(server, http_canvas):
    tally: dict[str, int] = {}
    canvas = http_canvas
    client = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {canvas.token}"}, timeout=30)

    def check(response: httpx.Response, allowed: set[int]) -> dict[str, Any]:
        assert response.status_code < 500, (response.status_code, response.text[:300])
        assert response.status_code in allowed, (response.status_code, response.text[:300])
        assert len(response.content) < MAX_REPLY or response.status_code < 300, response.text[:300]
        body = response.json()
        if response.status_code >= 400:
            assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
        key = f"{response.status_code}" + (f":{body['error']['code']}" if response.status_code >= 400 else "")
        tally[key] = tally.get(key, 0) + 1
        return body

    @settings(max_examples=HTTP_EXAMPLES, **FUZZ)
    @given(
        st.sampled_from(["commands", "commands", "commands", "events", "state", "fork", "restore", "shares",
                         "create"]),
        bodies,
        query_values,
        query_values,
        user_headers,
        st.integers(0, 3),
    )  # fmt: skip
    def one(route: str, body: bytes, first: str, second: str, user: str, reuse: int) -> None:
        base = f"/api/canvases/{canvas.id}"
        if reuse != 0:
            with contextlib.suppress(ValueError, RecursionError):
                body = json.dumps(fresh_id(json.loads(body))).encode()
        headers = {"x-opendream-user": user, "content-type": "application/json"}
        if route == "commands":
            reply = check(client.post(f"{base}/commands", content=body, headers=headers), {200, 400, 404, 409, 422})
            if "seqs" in reply:
                canvas.acked.update(reply["seqs"])
        elif route == "restore":
            reply = check(client.post(f"{base}/restore", content=body, headers=headers), {200, 400, 409, 422})
            if "seqs" in reply:
                canvas.acked.update(reply["seqs"])
        elif route == "events":
            check(client.get(f"{base}/events", params={"after": first, "limit": second}), {200, 400})
        elif route == "state":
            check(client.get(f"{base}/state", params={"version": first}), {200, 400})
        elif route == "fork":
            check(client.post(f"{base}/fork", content=body, params={"version": first}), {201, 400})
        elif route == "shares":
            check(client.post(f"{base}/shares", content=body), {201, 400})
        else:
            check(client.post("/api/canvases", content=body, headers=headers),
                  {200, 201, 400, 409})  # fmt: skip

    try:
        one()
        # Bodies over the limit, declared or streamed, are refused before they are read.
        big = b'{"command_id": "x", "command": {"type": "rename_canvas", "name": "' + b"n" * (2 << 20) + b'"}}'
        check(client.post(f"/api/canvases/{canvas.id}/commands", content=big), {413})
        check(client.post(f"/api/canvases/{canvas.id}/commands", content=iter([big[i : i + 65536]
                                                                               for i in range(0, len(big), 65536)])),
              {413})  # fmt: skip
        check(client.request("PATCH", f"/api/canvases/{canvas.id}/commands"), {405})
        check(client.get("/api/nothing/here"), {404})
    finally:
        client.close()
    assert health(server)
    head = canvas.check_log()
    record_figures("fuzz_http", {"examples": sum(tally.values()), "outcomes": tally, "log_head": head})
    assert tally.get("200", 0) > 0 and any(key.startswith("4") for key in tally), tally
