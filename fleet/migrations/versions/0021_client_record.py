"""the client record a caregiver needs: access code, key box, care notes, family contacts,
and the agency's own fields (client_fields), each for caregivers or the office only

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_code', sa.String(length=64), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('key_box', sa.String(length=200), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('care_notes', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('family_contacts', sa.JSON(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('custom', sa.JSON(), nullable=False,
                                      server_default='{}'))
    # the server defaults filled the existing rows; the model gives new rows their values
    with op.batch_alter_table('clients', schema=None) as batch_op:
        for name in ('access_code', 'key_box', 'care_notes', 'family_contacts', 'custom'):
            batch_op.alter_column(name, server_default=None)
    op.create_table('client_fields',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('choices', sa.JSON(), nullable=False),
    sa.Column('visible_to', sa.String(length=10), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint("kind IN ('text', 'number', 'date', 'choice')",
                       name=op.f('ck_client_fields_kind')),
    sa.CheckConstraint("visible_to IN ('caregivers', 'office')",
                       name=op.f('ck_client_fields_visible_to')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                            name=op.f('fk_client_fields_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_fields')),
    sa.UniqueConstraint('organisation_id', 'key', name=op.f('uq_client_fields_organisation_id_key'))
    )
    with op.batch_alter_table('client_fields', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_fields_organisation_id'),
                              ['organisation_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('client_fields', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_fields_organisation_id'))
    op.drop_table('client_fields')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        for name in ('custom', 'family_contacts', 'care_notes', 'key_box', 'access_code'):
            batch_op.drop_column(name)
