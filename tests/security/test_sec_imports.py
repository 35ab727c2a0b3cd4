"""Imports are commands like any other (issue #13): a hostile file is refused whole, naming the field, and a
large one cannot stall the other canvases. Real server processes, real sockets."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import orjson
import pytest

from tests.reliability.relsupport import model_settled, new_canvas, record_figures, start_server

pytestmark = [pytest.mark.slow]


def document(*events: tuple[str, dict[str, Any]], name: str = "Imported") -> dict[str, Any]:
    body = [("canvas.created", {"name": name}), *events]
    return {"format": "opendream.workflow", "version": 1,
            "events": [{"seq": index + 1, "type": kind, "payload": payload} for index, (kind, payload) in enumerate(body)]}  # fmt: skip


def blank(layer_id: Any, name: Any = "Layer") -> tuple[str, dict[str, Any]]:
    return ("layer.added", {"layer_id": layer_id, "operation": "blank", "params": {"width": 8, "height": 8},
                            "seed": None, "parents": [], "name": name})  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("imports") / "data")
    yield running
    running.stop()


HOSTILE = {
    "html in a layer id": (document(blank("<img src=x onerror=alert(1)>")), "events[1].payload.layer_id"),
    "sql in a layer id": (document(blank("a'; DROP TABLE events;--")), "events[1].payload.layer_id"),
    "a 100,000-character layer name": (document(blank("a", "n" * 100_000)), "events[1].payload.name"),
    "a 100,000-character canvas name": (document(name="n" * 100_000), "events[0].payload.name"),
    "a number for a layer id": (document(blank(5)), "events[1].payload.layer_id"),
    "a rename of a layer that does not exist": (
        document(blank("a"), ("layer.renamed", {"layer_id": "b", "name": "x"})),
        "events[2].payload.layer_id",
    ),
    "an opacity out of range": (
        document(blank("a"), ("layer.opacity_changed", {"layer_id": "a", "opacity": 7.0})),
        "events[2].payload.opacity",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_import_is_refused_whole_naming_the_field_and_changes_nothing(server, case):
    body, field = HOSTILE[case]
    with server.client() as client:
        before = client.get("/api/canvases").json()["canvases"]
        response = client.post("/api/workflows", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["field"] == field, error
        assert len(error["message"]) < 1000  # the hostile value is not echoed back whole
        assert client.get("/api/canvases").json()["canvases"] == before


def big_document(target_bytes: int) -> bytes:
    events: list[tuple[str, dict[str, Any]]] = [blank("a")]
    for index in range(target_bytes // 168):  # ~168 bytes an event, as written below
        events.append(("layer.opacity_changed", {"layer_id": "a", "opacity": (index % 100) / 100}))
    raw = document(*events)
    for index, event in enumerate(raw["events"][2:], start=2):
        event.update(actor=f"someone-{index % 7}", command_id=f"command-{index:012d}", timestamp=1.7e9 + index)
    return orjson.dumps(raw)


def test_a_large_import_does_not_stall_another_canvas(server):
    body = big_document(16 * 1024 * 1024)
    assert 15 * 1024 * 1024 <= len(body) <= 18 * 1024 * 1024, len(body)
    model_settled(server)  # the import's effect alone: the model's load at start is not what is measured
    canvas_id, _ = new_canvas(server, "Busy elsewhere")
    latencies: list[float] = []
    stop = threading.Event()
    errors: list[str] = []

    def edit() -> None:
        with server.client() as client:
            index = 0
            while not stop.is_set():
                started = time.perf_counter()
                response = client.post(f"/api/canvases/{canvas_id}/commands",
                                       json={"command_id": f"r{index}", "command": {"type": "rename_canvas",
                                                                                     "name": f"name {index}"}})  # fmt: skip
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors.append(response.text)
                index += 1
                time.sleep(0.02)

    editor = threading.Thread(target=edit)
    editor.start()
    time.sleep(0.5)
    started = time.perf_counter()
    with server.client() as client:
        response = client.post("/api/workflows", content=body, headers={"content-type": "application/json"},
                               timeout=300)  # fmt: skip
    import_s = time.perf_counter() - started
    time.sleep(0.3)
    stop.set()
    editor.join()
    assert response.status_code == 201, response.text
    imported = response.json()
    with server.client() as client:
        # the whole file, and after it only what the render worker records (its blank layer renders at once)
        state = client.get(f"/api/canvases/{imported['id']}/state").json()
        later = client.get(f"/api/canvases/{imported['id']}/events", params={"after": imported["version"]}).json()
    assert state["version"] == imported["version"] + len(later["events"]), (state["version"], imported["version"])
    assert {event["type"] for event in later["events"]} <= {"layer.rendered", "layer.failed"}, later["events"][:3]
    assert not errors, errors[:3]
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    figures = {"import_bytes": len(body), "import_events": imported["version"], "import_s": round(import_s, 2),
               "other_commands": len(latencies), "other_p50_ms": round(statistics.median(latencies), 1),
               "other_p99_ms": round(p99, 1), "other_max_ms": round(latencies[-1], 1)}  # fmt: skip
    record_figures("import_beside_commands", figures)
    assert p99 < 250, figures
