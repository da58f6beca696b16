"""console sessions kept server-side: logout, sign out everywhere, idle timeout

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('api_key_id', sa.Integer(), nullable=True),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('last_seen_at', UTC, nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                            name=op.f('fk_console_sessions_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'],
                            name=op.f('fk_console_sessions_api_key_id_api_keys'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_console_sessions_token_hash'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_user_id'), ['user_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_console_sessions_api_key_id'), ['api_key_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_api_key_id'))
        batch_op.drop_index(batch_op.f('ix_console_sessions_user_id'))
    op.drop_table('console_sessions')
