"""device health alerts: more kinds, open/resolved times, who acknowledged, one open alert per
(device, kind), per-organisation alert settings, each device's last will state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_OLD_KINDS = "kind IN ('late', 'missing', 'sos', 'device_offline', 'low_battery')"
_NEW_KINDS = ("kind IN ('late', 'missing', 'sos', 'device_offline', 'low_battery', "
              "'reader_failed', 'clock_drift', 'journal_full')")
# at most one open alert per (device, kind) for the device-health kinds
_OPEN_DEVICE = ("resolved_at IS NULL AND kind IN ('device_offline', 'low_battery', "
                "'reader_failed', 'clock_drift', 'journal_full')")


def upgrade() -> None:
    with op.batch_alter_table('alerts') as batch:
        batch.add_column(sa.Column('opened_at', UTC, nullable=True))
        batch.add_column(sa.Column('resolved_at', UTC, nullable=True))
        batch.add_column(sa.Column('acknowledged_who', sa.String(length=200), nullable=True))
        batch.drop_constraint(op.f('ck_alerts_kind'), type_='check')
        batch.create_check_constraint(op.f('ck_alerts_kind'), sa.text(_NEW_KINDS))
    op.create_index('ix_alerts_device_id', 'alerts', ['device_id'])
    op.create_index('uq_alerts_open_device_kind', 'alerts', ['device_id', 'kind'], unique=True,
                    sqlite_where=sa.text(_OPEN_DEVICE), postgresql_where=sa.text(_OPEN_DEVICE))
    op.create_table('alert_settings',
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('offline_after_s', sa.Integer(), nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_alert_settings_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('organisation_id', name=op.f('pk_alert_settings'))
    )
    op.create_table('device_links',
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('changed_at', UTC, nullable=False),
    sa.CheckConstraint("state IN ('online', 'offline')", name=op.f('ck_device_links_state')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_links_device_id_devices')),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_links'))
    )


def downgrade() -> None:
    op.drop_table('device_links')
    op.drop_table('alert_settings')
    op.drop_index('uq_alerts_open_device_kind', table_name='alerts')
    op.drop_index('ix_alerts_device_id', table_name='alerts')
    op.execute("DELETE FROM alerts WHERE kind IN ('reader_failed', 'clock_drift', 'journal_full')")
    with op.batch_alter_table('alerts') as batch:
        batch.drop_constraint(op.f('ck_alerts_kind'), type_='check')
        batch.create_check_constraint(op.f('ck_alerts_kind'), sa.text(_OLD_KINDS))
        batch.drop_column('acknowledged_who')
        batch.drop_column('resolved_at')
        batch.drop_column('opened_at')
