"""Initial schema: canvases (log heads), events, commands (idempotency), snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canvases",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_canvases_updated_at", "canvases", ["updated_at"])
    op.create_table(
        "events",
        sa.Column("canvas_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("command_id", sa.String(length=128), nullable=True),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["canvas_id"], ["canvases.id"]),
        sa.PrimaryKeyConstraint("canvas_id", "seq"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_table(
        "commands",
        sa.Column("canvas_id", sa.String(length=64), nullable=False),
        sa.Column("command_id", sa.String(length=128), nullable=False),
        sa.Column("command_hash", sa.String(length=64), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["canvas_id"], ["canvases.id"]),
        sa.PrimaryKeyConstraint("canvas_id", "command_id"),
    )
    op.create_table(
        "snapshots",
        sa.Column("canvas_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["canvas_id"], ["canvases.id"]),
        sa.PrimaryKeyConstraint("canvas_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("snapshots")
    op.drop_table("commands")
    op.drop_table("events")
    op.drop_index("ix_canvases_updated_at", table_name="canvases")
    op.drop_table("canvases")
