"""signed client tags: each organisation's tag secret; badges revoked and replaced

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('organisations') as batch:
        batch.add_column(sa.Column('tag_secret', sa.String(length=64), nullable=True))
    orgs = sa.table('organisations', sa.column('id', sa.Integer),
                    sa.column('tag_secret', sa.String))
    conn = op.get_bind()
    for (org_id,) in conn.execute(sa.select(orgs.c.id)).all():
        # one secret per organisation, drawn here: never a shared default
        conn.execute(orgs.update().where(orgs.c.id == org_id)
                     .values(tag_secret=secrets.token_hex(32)))
    with op.batch_alter_table('organisations') as batch:
        batch.alter_column('tag_secret', existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table('badges') as batch:
        batch.add_column(sa.Column('revoked_at', UTC, nullable=True))
        batch.add_column(sa.Column('revoke_reason', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('replaces_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_badges_replaces_id_badges'), 'badges',
                                 ['replaces_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('badges') as batch:
        batch.drop_constraint(op.f('fk_badges_replaces_id_badges'), type_='foreignkey')
        batch.drop_column('replaces_id')
        batch.drop_column('revoke_reason')
        batch.drop_column('revoked_at')
    with op.batch_alter_table('organisations') as batch:
        batch.drop_column('tag_secret')
