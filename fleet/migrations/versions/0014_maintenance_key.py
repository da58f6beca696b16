"""the reader's maintenance key: the fleet issues one-time codes that open its serial console
(fleet.maintenance, firmware/maintcode.py)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices') as batch:
        batch.add_column(sa.Column('maint_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('devices') as batch:
        batch.drop_column('maint_key')
