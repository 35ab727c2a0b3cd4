"""Canvas blobs: which canvas names which image, so that images are served under the canvas's access.

Existing logs are indexed here: every 64-hex-digit string in the payloads of the events that can name images
(layer params, renders, restored layers). From now on the service records exactly the images an event names.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAMING = ("layer.added", "layer.params_changed", "layer.rendered", "layer.restored")


def _hashes(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if SHA256.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _hashes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _hashes(item)


def upgrade() -> None:
    op.create_table(
        "canvas_blobs",
        sa.Column("canvas_id", sa.String(length=64), sa.ForeignKey("canvases.id"), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("canvas_id", "sha256"),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT canvas_id, payload FROM events WHERE type IN :types").bindparams(
            sa.bindparam("types", expanding=True)
        ),
        {"types": list(NAMING)},
    )
    found: set[tuple[str, str]] = set()
    for canvas_id, payload in rows:
        found.update((canvas_id, sha) for sha in _hashes(json.loads(payload)))
    if found:
        table = sa.table("canvas_blobs", sa.column("canvas_id"), sa.column("sha256"))
        op.bulk_insert(table, [{"canvas_id": canvas_id, "sha256": sha} for canvas_id, sha in sorted(found)])


def downgrade() -> None:
    op.drop_table("canvas_blobs")
