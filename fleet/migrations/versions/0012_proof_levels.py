"""proof of presence: the client's reference point, the agency's home radius, each clock event's proof level

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lat', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('lon', sa.Double(), nullable=True))
    with op.batch_alter_table('alert_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('home_radius_m', sa.Integer(), nullable=False,
                                      server_default='200'))
    with op.batch_alter_table('clock_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('proof_level', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_clock_events_proof_level'), ['proof_level'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('clock_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clock_events_proof_level'))
        batch_op.drop_column('proof_level')
    with op.batch_alter_table('alert_settings', schema=None) as batch_op:
        batch_op.drop_column('home_radius_m')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('lon')
        batch_op.drop_column('lat')
