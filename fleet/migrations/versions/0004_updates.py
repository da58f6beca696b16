"""firmware updates: signed bundles and their files, rollouts in waves and their targets

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('update_bundles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('manifest', sa.Text(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.String(length=88), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.CheckConstraint("product IN ('telegest-reader')", name=op.f('ck_update_bundles_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_update_bundles')),
    sa.UniqueConstraint('manifest_sha256', name=op.f('uq_update_bundles_manifest_sha256')),
    sa.UniqueConstraint('version', name=op.f('uq_update_bundles_version'))
    )
    op.create_table('update_bundle_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bundle_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['bundle_id'], ['update_bundles.id'], name=op.f('fk_update_bundle_files_bundle_id_update_bundles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_update_bundle_files')),
    sa.UniqueConstraint('bundle_id', 'idx', name=op.f('uq_update_bundle_files_bundle_id_idx'))
    )
    op.create_index('ix_update_bundle_files_bundle_id', 'update_bundle_files', ['bundle_id'])
    op.create_table('rollouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bundle_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('waves', sa.JSON(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('max_failures', sa.Integer(), nullable=False),
    sa.Column('failures_at_resume', sa.Integer(), nullable=False),
    sa.Column('offer_ttl_s', sa.Integer(), nullable=False),
    sa.Column('target_filter', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('updated_at', UTC, nullable=False),
    sa.CheckConstraint("state IN ('running', 'paused', 'done', 'cancelled')", name=op.f('ck_rollouts_state')),
    sa.ForeignKeyConstraint(['bundle_id'], ['update_bundles.id'], name=op.f('fk_rollouts_bundle_id_update_bundles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollouts'))
    )
    op.create_index('ix_rollouts_bundle_id', 'rollouts', ['bundle_id'])
    op.create_table('rollout_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('command_id', sa.Integer(), nullable=True),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('why', sa.String(length=64), nullable=True),
    sa.Column('offered_at', UTC, nullable=True),
    sa.Column('updated_at', UTC, nullable=True),
    sa.CheckConstraint("state IN ('waiting', 'offered', 'downloading', 'installed', 'ok', 'failed', 'cancelled')", name=op.f('ck_rollout_targets_state')),
    sa.ForeignKeyConstraint(['command_id'], ['device_commands.id'], name=op.f('fk_rollout_targets_command_id_device_commands')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_rollout_targets_device_id_devices')),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_targets_rollout_id_rollouts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_targets')),
    sa.UniqueConstraint('rollout_id', 'device_id', name=op.f('uq_rollout_targets_rollout_id_device_id'))
    )
    op.create_index('ix_rollout_targets_command_id', 'rollout_targets', ['command_id'])
    op.create_index('ix_rollout_targets_device_id', 'rollout_targets', ['device_id'])
    op.create_index('ix_rollout_targets_rollout_id', 'rollout_targets', ['rollout_id'])


def downgrade() -> None:
    op.drop_table('rollout_targets')
    op.drop_table('rollouts')
    op.drop_table('update_bundle_files')
    op.drop_table('update_bundles')
