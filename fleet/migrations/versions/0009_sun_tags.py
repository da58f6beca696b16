"""NTAG 424 DNA tags with Secure Unique NFC: each organisation's SUN master key; a badge's chip
UID and last accepted read counter; a clock event's proof (sun or static); SUN URLs in `tag`

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""
from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('organisations') as batch:
        batch.add_column(sa.Column('sun_master_key', sa.String(length=64), nullable=True))
    orgs = sa.table('organisations', sa.column('id', sa.Integer),
                    sa.column('sun_master_key', sa.String))
    conn = op.get_bind()
    for (org_id,) in conn.execute(sa.select(orgs.c.id)).all():
        # one key per organisation, drawn here: never a shared default
        conn.execute(orgs.update().where(orgs.c.id == org_id)
                     .values(sun_master_key=secrets.token_hex(32)))
    with op.batch_alter_table('organisations') as batch:
        batch.alter_column('sun_master_key', existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table('badges') as batch:
        batch.add_column(sa.Column('sun_uid', sa.String(length=14), nullable=True))
        batch.add_column(sa.Column('sun_counter', sa.Integer(), nullable=True))
        batch.create_unique_constraint(op.f('uq_badges_sun_uid'), ['sun_uid'])
    with op.batch_alter_table('clock_events') as batch:
        batch.alter_column('tag', existing_type=sa.String(length=64),
                           type_=sa.String(length=255), existing_nullable=True)
        batch.add_column(sa.Column('tag_proof', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clock_events') as batch:
        batch.drop_column('tag_proof')
        batch.alter_column('tag', existing_type=sa.String(length=255),
                           type_=sa.String(length=64), existing_nullable=True)
    with op.batch_alter_table('badges') as batch:
        batch.drop_constraint(op.f('uq_badges_sun_uid'), type_='unique')
        batch.drop_column('sun_counter')
        batch.drop_column('sun_uid')
    with op.batch_alter_table('organisations') as batch:
        batch.drop_column('sun_master_key')
