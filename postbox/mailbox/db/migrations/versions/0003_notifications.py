"""notifications: outbox delivery state, notification addresses

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 10:00:00.000000

Hand-written (0002 has shipped). Only added columns and one index, so SQLite needs no
table rebuild: plain ``ALTER TABLE … ADD COLUMN``; the NOT NULL column has a server default.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("mail_id", sa.String(length=200), nullable=True))
    op.add_column("outbox", sa.Column("claimed_until", sa.BigInteger(), nullable=True))
    op.add_column("outbox", sa.Column("last_error", sa.String(length=200), nullable=True))
    op.create_index("ix_outbox_mail_id", "outbox", ["mail_id"], unique=True)
    op.add_column("accounts", sa.Column("notification_address", sa.Text(), nullable=True))
    op.add_column(
        "accounts",
        sa.Column(
            "notification_verified",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("notification_verified")
        batch_op.drop_column("notification_address")
    op.drop_index("ix_outbox_mail_id", table_name="outbox")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("mail_id")
