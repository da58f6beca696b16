"""security and privacy: the audit hash chain, the retention job's runs and settings, what a phone may report, badges unique per organisation

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)
GENESIS = '0' * 64  # the hash before the first entry of the chain (fleet.auditchain)

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('entry_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    # entries written before this migration stay unhashed: the chain starts after them
    op.bulk_insert(sa.table('audit_chain_head', sa.column('id', sa.Integer),
                            sa.column('hash', sa.String)), [{'id': 1, 'hash': GENESIS}])
    op.create_table('retention_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', UTC, nullable=False),
    sa.Column('who', sa.String(length=200), nullable=False),
    sa.Column('purged', sa.JSON(), nullable=False),
    sa.Column('audit_anchor', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_runs'))
    )
    with op.batch_alter_table('retention_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retention_runs_at'), ['at'], unique=False)

    with op.batch_alter_table('alert_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('positions_keep_days', sa.Integer(), nullable=False,
                                      server_default='60'))
        batch_op.add_column(sa.Column('rejections_keep_days', sa.Integer(), nullable=False,
                                      server_default='30'))
        batch_op.add_column(sa.Column('audit_keep_days', sa.Integer(), nullable=False,
                                      server_default='1825'))
        batch_op.add_column(sa.Column('report_window_h', sa.Integer(), nullable=False,
                                      server_default='24'))
        batch_op.add_column(sa.Column('report_km_max', sa.Integer(), nullable=False,
                                      server_default='300'))
        batch_op.add_column(sa.Column('report_expenses_max_cents', sa.Integer(), nullable=False,
                                      server_default='20000'))

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))

    with op.batch_alter_table('badges', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_badges_kind_uid'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_badges_organisation_id_kind_uid'), ['organisation_id', 'kind', 'uid'])



def downgrade() -> None:
    with op.batch_alter_table('badges', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_badges_organisation_id_kind_uid'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_badges_kind_uid'), ['kind', 'uid'])

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')

    with op.batch_alter_table('alert_settings', schema=None) as batch_op:
        batch_op.drop_column('report_expenses_max_cents')
        batch_op.drop_column('report_km_max')
        batch_op.drop_column('report_window_h')
        batch_op.drop_column('audit_keep_days')
        batch_op.drop_column('rejections_keep_days')
        batch_op.drop_column('positions_keep_days')

    with op.batch_alter_table('retention_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retention_runs_at'))

    op.drop_table('retention_runs')
    op.drop_table('audit_chain_head')
