"""Client store: clients, encrypted credentials, API keys, syncs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("credentials_from_environment", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("deactivated_at", nullable=True),
        _timestamp("partition_registered_at", nullable=True),
    )
    op.create_table(
        "client_credentials",
        sa.Column(
            "client_id",
            sa.String(40),
            sa.ForeignKey("clients.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        _timestamp("rotated_at"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("client_id", sa.String(40), sa.ForeignKey("clients.id"), nullable=True),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
    )
    op.create_table(
        "syncs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("client_id", sa.String(40), sa.ForeignKey("clients.id"), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("full_refresh", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("active_client_id", sa.String(40), nullable=True),
        sa.Column("raw_runs", sa.JSON(), nullable=False),
        sa.Column("transform_run_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("lease_until", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("finished_at", nullable=True),
        sa.UniqueConstraint("client_id", "idempotency_key", name="uq_syncs_client_idempotency_key"),
        sa.UniqueConstraint("active_client_id", name="uq_syncs_active_client_id"),
    )
    op.create_index("ix_syncs_client_id", "syncs", ["client_id"])
    op.create_index("ix_syncs_state", "syncs", ["state"])


def downgrade() -> None:
    op.drop_table("syncs")
    op.drop_table("api_keys")
    op.drop_table("client_credentials")
    op.drop_table("clients")
