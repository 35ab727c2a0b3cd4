"""Shared fixtures. Unit tests of the event core use small stand-in operations (`ops`); the server and
engine tests use the real built-in operations."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import Field
from sqlalchemy import create_engine

from engine.operation import LayerInput, MaskInput, Operation, OperationRegistry, Params, Prompt
from server.core.decide import Decider
from server.service import CanvasService
from server.store.sql import SQLEventStore, sqlite_url


class Generate(Operation):
    name = "generate"
    title = "Generate"
    uses_seed = True

    class Params(Params):
        prompt: str = Prompt()
        steps: int = Field(4, ge=1, le=150)


class Edit(Operation):
    name = "edit"
    title = "Edit"
    uses_seed = True

    class Params(Params):
        source: str = LayerInput()
        prompt: str = Prompt()


class Blend(Operation):
    name = "blend"
    title = "Blend"

    class Params(Params):
        a: str = LayerInput()
        b: str = LayerInput()
        mask: str | None = MaskInput(default=None)


def stand_in_operations() -> OperationRegistry:
    registry = OperationRegistry()
    for operation in (Generate, Edit, Blend):
        registry.register(operation)
    return registry


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def ops() -> OperationRegistry:
    return stand_in_operations()


@pytest.fixture
def decider(ops: OperationRegistry) -> Decider:
    counter = iter(range(1, 1_000_000))
    return Decider(ops, new_seed=lambda: 42, new_layer_id=lambda: f"auto{next(counter)}")


POSTGRES_URL = os.environ.get("OPENDREAM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every store test runs on both backends. PostgreSQL must be running (CI starts it): no silent skip."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "opendream.db")
        return
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture
def store(db_url: str) -> SQLEventStore:
    store = SQLEventStore(db_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
async def service(store: SQLEventStore, decider: Decider) -> AsyncIterator[CanvasService]:
    service = CanvasService(store, decider, snapshot_every=10)
    await service.start()
    yield service
    await service.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in this thread for the rest of
    the session, and async tests cannot start their own beside it."""
    items.sort(key=lambda item: "tests/browser/" in item.path.as_posix())  # stable: order kept otherwise
