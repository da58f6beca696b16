"""messages with mandatory read, the agency's numbers and directory, call-me-back requests
(fleet.messages, fleet.contacts, fleet.callbacks)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('direction', sa.String(length=16), nullable=False,
                                   server_default='to_caregivers'))
        batch.add_column(sa.Column('mandatory', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('everyone', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('sender', sa.String(length=200), nullable=False,
                                   server_default=''))
        batch.add_column(sa.Column('caregiver_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('device_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('ref', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('visit_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_messages_caregiver_id_caregivers'), 'caregivers',
                                 ['caregiver_id'], ['id'])
        batch.create_foreign_key(op.f('fk_messages_device_id_devices'), 'devices',
                                 ['device_id'], ['id'])
        batch.create_foreign_key(op.f('fk_messages_visit_id_visits'), 'visits',
                                 ['visit_id'], ['id'])
        batch.create_unique_constraint(op.f('uq_messages_device_id_ref'), ['device_id', 'ref'])
        batch.create_check_constraint(
            'direction', "direction IN ('to_caregivers', 'to_office')")
    with op.batch_alter_table('message_recipients') as batch:
        batch.add_column(sa.Column('acknowledged_at', UTC, nullable=True))
    with op.batch_alter_table('emergency_numbers') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False,
                                   server_default='emergency'))
        batch.create_check_constraint('kind', "kind IN ('emergency', 'office')")
    with op.batch_alter_table('caregivers') as batch:
        batch.add_column(sa.Column('work_phone', sa.String(length=32), nullable=False,
                                   server_default=''))
    with op.batch_alter_table('alert_settings') as batch:
        batch.add_column(sa.Column('directory_colleagues', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        'callback_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('caregiver_id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=True),
        sa.Column('ref', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('taken_at', UTC, nullable=True),
        sa.Column('taken_by', sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                                name=op.f('fk_callback_requests_organisation_id_organisations')),
        sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'],
                                name=op.f('fk_callback_requests_caregiver_id_caregivers')),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'],
                                name=op.f('fk_callback_requests_device_id_devices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_callback_requests')),
        sa.UniqueConstraint('device_id', 'ref', name=op.f('uq_callback_requests_device_id_ref')),
    )
    op.create_index(op.f('ix_callback_requests_organisation_id'), 'callback_requests',
                    ['organisation_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_callback_requests_organisation_id'), table_name='callback_requests')
    op.drop_table('callback_requests')
    with op.batch_alter_table('alert_settings') as batch:
        batch.drop_column('directory_colleagues')
    with op.batch_alter_table('caregivers') as batch:
        batch.drop_column('work_phone')
    with op.batch_alter_table('emergency_numbers') as batch:
        batch.drop_constraint(op.f('ck_emergency_numbers_kind'), type_='check')
        batch.drop_column('kind')
    with op.batch_alter_table('message_recipients') as batch:
        batch.drop_column('acknowledged_at')
    with op.batch_alter_table('messages') as batch:
        batch.drop_constraint(op.f('ck_messages_direction'), type_='check')
        batch.drop_constraint(op.f('uq_messages_device_id_ref'), type_='unique')
        for fk in ('fk_messages_caregiver_id_caregivers', 'fk_messages_device_id_devices',
                   'fk_messages_visit_id_visits'):
            batch.drop_constraint(op.f(fk), type_='foreignkey')
        for col in ('visit_id', 'ref', 'device_id', 'caregiver_id', 'sender', 'everyone',
                    'mandatory', 'direction'):
            batch.drop_column(col)
