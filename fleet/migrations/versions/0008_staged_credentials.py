"""staged broker credentials: provisioning in two phases (fleet.lifecycle.stage / confirm)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices') as batch:
        batch.add_column(sa.Column('broker_username', sa.String(length=80), nullable=True))
        batch.add_column(sa.Column('staging_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('staged_username', sa.String(length=80), nullable=True))
        batch.add_column(sa.Column('staged_hash', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('staged_proof', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('staged_expires_at', UTC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('devices') as batch:
        batch.drop_column('staged_expires_at')
        batch.drop_column('staged_proof')
        batch.drop_column('staged_hash')
        batch.drop_column('staged_username')
        batch.drop_column('staging_id')
        batch.drop_column('broker_username')
