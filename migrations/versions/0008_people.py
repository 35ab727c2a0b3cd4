"""People: the display name and colour of each user of a canvas, as their last hello said, so that everyone's
history names them (also when they are offline, or were there before you).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("canvas_id", sa.String(length=64), sa.ForeignKey("canvases.id"), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("colour", sa.String(length=7), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("canvas_id", "user_id"),
    )
    op.create_index("ix_people_canvas_last_seen", "people", ["canvas_id", "last_seen"])


def downgrade() -> None:
    op.drop_index("ix_people_canvas_last_seen", table_name="people")
    op.drop_table("people")
