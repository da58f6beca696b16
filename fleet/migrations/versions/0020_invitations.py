"""invitations: one-time links to set a console password (a new user's, or a reset)

Revision ID: 0020
Revises: 0014
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0020'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=8), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.Column('used_at', UTC, nullable=True),
    sa.CheckConstraint("purpose IN ('invite', 'reset')", name=op.f('ck_invitations_purpose')),
    sa.CheckConstraint("role IN ('admin', 'manager', 'technician')",
                       name=op.f('ck_invitations_role')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                            name=op.f('fk_invitations_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invitations_token_hash'))
    )
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitations_email'), ['email'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitations_email'))
    op.drop_table('invitations')
