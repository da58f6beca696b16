"""visit series: a recurring visit (RFC 5545 RRULE) expanded into plain visits on a rolling
horizon (fleet.visit_series); each visit says which series and local day it comes from

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'visit_series',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('caregiver_id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=True),
        sa.Column('rrule', sa.String(length=200), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=True),
        sa.Column('at', sa.String(length=5), nullable=False),
        sa.Column('duration_min', sa.Integer(), nullable=False),
        sa.Column('exdates', sa.JSON(), nullable=False),
        sa.Column('expanded_until', sa.Date(), nullable=True),
        sa.Column('split_from_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('duration_min > 0', name=op.f('ck_visit_series_duration')),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                                name=op.f('fk_visit_series_organisation_id_organisations')),
        sa.ForeignKeyConstraint(['client_id'], ['clients.id'],
                                name=op.f('fk_visit_series_client_id_clients')),
        sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'],
                                name=op.f('fk_visit_series_caregiver_id_caregivers')),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'],
                                name=op.f('fk_visit_series_service_id_services')),
        sa.ForeignKeyConstraint(['split_from_id'], ['visit_series.id'],
                                name=op.f('fk_visit_series_split_from_id_visit_series')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_series')),
    )
    op.create_index(op.f('ix_visit_series_organisation_id'), 'visit_series',
                    ['organisation_id'])
    with op.batch_alter_table('visits') as batch:
        batch.add_column(sa.Column('series_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('series_day', sa.Date(), nullable=True))
        batch.create_foreign_key(op.f('fk_visits_series_id_visit_series'), 'visit_series',
                                 ['series_id'], ['id'])
        batch.create_unique_constraint(op.f('uq_visits_series_id_series_day'),
                                       ['series_id', 'series_day'])


def downgrade() -> None:
    with op.batch_alter_table('visits') as batch:
        batch.drop_constraint(op.f('uq_visits_series_id_series_day'), type_='unique')
        batch.drop_constraint(op.f('fk_visits_series_id_visit_series'), type_='foreignkey')
        batch.drop_column('series_day')
        batch.drop_column('series_id')
    op.drop_index(op.f('ix_visit_series_organisation_id'), 'visit_series')
    op.drop_table('visit_series')
