"""absences (requested from the app, decided in the console) and the professional card with
its verification token (fleet.absences, fleet.cards)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'absences',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('caregiver_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('starts_at', UTC, nullable=False),
        sa.Column('ends_at', UTC, nullable=False),
        sa.Column('all_day', sa.Boolean(), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('request_key', sa.String(length=64), nullable=True),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('decided_at', UTC, nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=True),
        sa.CheckConstraint("kind IN ('leave', 'sick', 'training', 'other')",
                           name=op.f('ck_absences_kind')),
        sa.CheckConstraint("state IN ('requested', 'approved', 'refused', 'cancelled')",
                           name=op.f('ck_absences_state')),
        sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_absences_period_order')),
        sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'],
                                name=op.f('fk_absences_caregiver_id_caregivers')),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                                name=op.f('fk_absences_organisation_id_organisations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_absences')),
        sa.UniqueConstraint('caregiver_id', 'request_key',
                            name=op.f('uq_absences_caregiver_id_request_key')),
    )
    op.create_index('ix_absences_caregiver_start', 'absences', ['caregiver_id', 'starts_at'])
    op.create_index(op.f('ix_absences_organisation_id'), 'absences', ['organisation_id'])
    op.create_table(
        'caregiver_cards',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('caregiver_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.String(length=32), nullable=False),
        sa.Column('title', sa.String(length=100), nullable=False),
        sa.Column('valid_from', sa.Date(), nullable=True),
        sa.Column('valid_until', sa.Date(), nullable=True),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('photo', sa.LargeBinary(), nullable=True),
        sa.Column('photo_type', sa.String(length=16), nullable=True),
        sa.Column('updated_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'],
                                name=op.f('fk_caregiver_cards_caregiver_id_caregivers')),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                                name=op.f('fk_caregiver_cards_organisation_id_organisations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_caregiver_cards')),
        sa.UniqueConstraint('caregiver_id', name=op.f('uq_caregiver_cards_caregiver_id')),
        sa.UniqueConstraint('token', name=op.f('uq_caregiver_cards_token')),
    )
    op.create_index(op.f('ix_caregiver_cards_organisation_id'), 'caregiver_cards',
                    ['organisation_id'])


def downgrade() -> None:
    op.drop_table('caregiver_cards')
    op.drop_table('absences')
