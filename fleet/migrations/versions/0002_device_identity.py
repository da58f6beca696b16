"""device identity: broker credentials, enrolment tokens, the actor's role in the audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices') as batch:
        batch.add_column(sa.Column('credential_hash', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('provisioned_at', UTC, nullable=True))
        batch.add_column(sa.Column('status_changed_at', UTC, nullable=True))
        batch.add_column(sa.Column('status_reason', sa.Text(), nullable=True))
    with op.batch_alter_table('audit_log') as batch:
        batch.add_column(sa.Column('role', sa.String(length=16), nullable=True))
    op.create_table('enrolment_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.Column('used_at', UTC, nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_enrolment_tokens_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrolment_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_enrolment_tokens_token_hash'))
    )
    op.create_index('ix_enrolment_tokens_device_id', 'enrolment_tokens', ['device_id'])


def downgrade() -> None:
    op.drop_index('ix_enrolment_tokens_device_id', table_name='enrolment_tokens')
    op.drop_table('enrolment_tokens')
    with op.batch_alter_table('audit_log') as batch:
        batch.drop_column('role')
    with op.batch_alter_table('devices') as batch:
        batch.drop_column('status_reason')
        batch.drop_column('status_changed_at')
        batch.drop_column('provisioned_at')
        batch.drop_column('credential_hash')
