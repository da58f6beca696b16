"""SOS alerts (DATI) from phones and reader boxes, phones' Web Push subscriptions, the agency's
SOS number (fleet.sos, fleet.webpush)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sos_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('uid', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('caregiver_id', sa.Integer(), nullable=True),
        sa.Column('visit_id', sa.Integer(), nullable=True),
        sa.Column('client_id', sa.Integer(), nullable=True),
        sa.Column('raised_at', UTC, nullable=False),
        sa.Column('received_at', UTC, nullable=False),
        sa.Column('lat', sa.Double(), nullable=True),
        sa.Column('lon', sa.Double(), nullable=True),
        sa.Column('accuracy_m', sa.Integer(), nullable=True),
        sa.Column('acknowledged_at', UTC, nullable=True),
        sa.Column('acknowledged_by', sa.Integer(), nullable=True),
        sa.Column('acknowledged_who', sa.String(length=200), nullable=True),
        sa.CheckConstraint("source IN ('phone', 'box')", name=op.f('ck_sos_alerts_source')),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                                name=op.f('fk_sos_alerts_organisation_id_organisations')),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'],
                                name=op.f('fk_sos_alerts_device_id_devices')),
        sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'],
                                name=op.f('fk_sos_alerts_caregiver_id_caregivers')),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id'],
                                name=op.f('fk_sos_alerts_visit_id_visits')),
        sa.ForeignKeyConstraint(['client_id'], ['clients.id'],
                                name=op.f('fk_sos_alerts_client_id_clients')),
        sa.ForeignKeyConstraint(['acknowledged_by'], ['users.id'],
                                name=op.f('fk_sos_alerts_acknowledged_by_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sos_alerts')),
        sa.UniqueConstraint('device_id', 'uid', name=op.f('uq_sos_alerts_device_id_uid')),
    )
    op.create_index('ix_sos_alerts_org_open', 'sos_alerts',
                    ['organisation_id', 'acknowledged_at'])
    op.create_table(
        'push_subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('endpoint', sa.String(length=1000), nullable=False),
        sa.Column('p256dh', sa.String(length=200), nullable=False),
        sa.Column('auth', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'],
                                name=op.f('fk_push_subscriptions_device_id_devices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscriptions')),
        sa.UniqueConstraint('endpoint', name=op.f('uq_push_subscriptions_endpoint')),
    )
    op.create_index(op.f('ix_push_subscriptions_device_id'), 'push_subscriptions',
                    ['device_id'])
    with op.batch_alter_table('alert_settings') as batch:
        batch.add_column(sa.Column('sos_number', sa.String(length=32), nullable=False,
                                   server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('alert_settings') as batch:
        batch.drop_column('sos_number')
    op.drop_index(op.f('ix_push_subscriptions_device_id'), table_name='push_subscriptions')
    op.drop_table('push_subscriptions')
    op.drop_index('ix_sos_alerts_org_open', table_name='sos_alerts')
    op.drop_table('sos_alerts')
