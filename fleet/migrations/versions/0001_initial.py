"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out from fleet.models and checked by hand; no import of app code, so this file
# keeps meaning what it meant when it was written. Times are timestamptz on PostgreSQL and
# naive UTC on SQLite (fleet.types.UTCDateTime); ids of tables that pile up are BIGINT.
UTC = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('at', UTC, nullable=False),
    sa.Column('who', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('why', sa.Text(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'])
    op.create_index('ix_audit_log_target', 'audit_log', ['target'])

    op.create_table('ingest_counters',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'name', name=op.f('pk_ingest_counters'))
    )
    op.create_table('organisations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('tolerance_min', sa.Integer(), nullable=False),
    sa.Column('rounding_mode', sa.String(length=16), nullable=False),
    sa.Column('rounding_step_min', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.CheckConstraint("rounding_mode IN ('none', 'nearest', 'planned')", name=op.f('ck_organisations_rounding_mode')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisations')),
    sa.UniqueConstraint('name', name=op.f('uq_organisations_name'))
    )
    op.create_table('caregivers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_caregivers_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_caregivers'))
    )
    op.create_index('ix_caregivers_organisation_id', 'caregivers', ['organisation_id'])

    op.create_table('clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=400), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_clients_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients'))
    )
    op.create_index('ix_clients_organisation_id', 'clients', ['organisation_id'])

    op.create_table('emergency_numbers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_emergency_numbers_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emergency_numbers'))
    )
    op.create_index('ix_emergency_numbers_organisation_id', 'emergency_numbers', ['organisation_id'])

    op.create_table('services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_services_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services')),
    sa.UniqueConstraint('organisation_id', 'code', name=op.f('uq_services_organisation_id_code'))
    )
    op.create_index('ix_services_organisation_id', 'services', ['organisation_id'])

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.CheckConstraint("role IN ('admin', 'manager', 'technician')", name=op.f('ck_users_role')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_users_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('last_used_at', UTC, nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'manager', 'technician')", name=op.f('ck_api_keys_role')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_api_keys_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_keys_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('badges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('caregiver_id', sa.Integer(), nullable=True),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.CheckConstraint("(kind = 'caregiver_card' AND caregiver_id IS NOT NULL) OR (kind = 'client_tag' AND client_id IS NOT NULL)", name=op.f('ck_badges_owner')),
    sa.CheckConstraint("kind IN ('caregiver_card', 'client_tag')", name=op.f('ck_badges_kind')),
    sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'], name=op.f('fk_badges_caregiver_id_caregivers')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_badges_client_id_clients')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_badges_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_badges')),
    sa.UniqueConstraint('kind', 'uid', name=op.f('uq_badges_kind_uid'))
    )
    op.create_index('ix_badges_caregiver_id', 'badges', ['caregiver_id'])
    op.create_index('ix_badges_client_id', 'badges', ['client_id'])
    op.create_index('ix_badges_organisation_id', 'badges', ['organisation_id'])

    op.create_table('devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ident', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('caregiver_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('acked_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_seen', UTC, nullable=True),
    sa.Column('health', sa.JSON(), nullable=True),
    sa.Column('clock_offset_s', sa.Integer(), nullable=True),
    sa.Column('fw_version', sa.String(length=32), nullable=True),
    sa.Column('config_version', sa.Integer(), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.CheckConstraint("kind IN ('reader', 'phone')", name=op.f('ck_devices_kind')),
    sa.CheckConstraint("status IN ('registered', 'provisioned', 'active', 'blocked', 'wiped', 'retired')", name=op.f('ck_devices_status')),
    sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'], name=op.f('fk_devices_caregiver_id_caregivers')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_devices_client_id_clients')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_devices_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices')),
    sa.UniqueConstraint('ident', name=op.f('uq_devices_ident'))
    )
    op.create_index('ix_devices_caregiver_id', 'devices', ['caregiver_id'])
    op.create_index('ix_devices_client_id', 'devices', ['client_id'])
    op.create_index('ix_devices_organisation_id', 'devices', ['organisation_id'])

    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('sender_user_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_messages_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['sender_user_id'], ['users.id'], name=op.f('fk_messages_sender_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    op.create_index('ix_messages_organisation_id', 'messages', ['organisation_id'])

    op.create_table('service_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_service_tasks_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_tasks')),
    sa.UniqueConstraint('service_id', 'position', name=op.f('uq_service_tasks_service_id_position'))
    )
    op.create_index('ix_service_tasks_service_id', 'service_tasks', ['service_id'])

    op.create_table('visits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('caregiver_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('planned_start', UTC, nullable=False),
    sa.Column('planned_end', UTC, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.CheckConstraint("status IN ('planned', 'in_progress', 'done', 'cancelled')", name=op.f('ck_visits_status')),
    sa.CheckConstraint('planned_end > planned_start', name=op.f('ck_visits_planned_order')),
    sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'], name=op.f('fk_visits_caregiver_id_caregivers')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_visits_client_id_clients')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_visits_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_visits_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits'))
    )
    op.create_index('ix_visits_caregiver_start', 'visits', ['caregiver_id', 'planned_start'])
    op.create_index('ix_visits_client_start', 'visits', ['client_id', 'planned_start'])
    op.create_index('ix_visits_org_start', 'visits', ['organisation_id', 'planned_start'])

    op.create_table('clock_events',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('badge_uid', sa.String(length=20), nullable=True),
    sa.Column('tag', sa.String(length=64), nullable=True),
    sa.Column('dir', sa.String(length=3), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=120), nullable=True),
    sa.Column('device_ts', UTC, nullable=False),
    sa.Column('received_at', UTC, nullable=False),
    sa.Column('time_quality', sa.String(length=8), nullable=False),
    sa.Column('clock_offset_s', sa.Integer(), nullable=False),
    sa.Column('pos', sa.JSON(), nullable=True),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('match_status', sa.String(length=8), nullable=False),
    sa.CheckConstraint("match_status IN ('pending', 'matched', 'anomaly', 'ignored')", name=op.f('ck_clock_events_match_status')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_clock_events_device_id_devices')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_clock_events_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clock_events')),
    sa.UniqueConstraint('device_id', 'seq', name=op.f('uq_clock_events_device_id_seq'))
    )
    op.create_index('ix_clock_events_badge_uid', 'clock_events', ['badge_uid'])
    op.create_index('ix_clock_events_device_ts', 'clock_events', ['device_ts'])
    op.create_index('ix_clock_events_match_status', 'clock_events', ['match_status'])
    op.create_index('ix_clock_events_visit_id', 'clock_events', ['visit_id'])

    op.create_table('device_commands',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('sent_at', UTC, nullable=True),
    sa.Column('done_at', UTC, nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.CheckConstraint("kind IN ('block', 'wipe', 'reboot', 'update', 'ping')", name=op.f('ck_device_commands_kind')),
    sa.CheckConstraint("state IN ('pending', 'sent', 'done', 'failed', 'expired')", name=op.f('ck_device_commands_state')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_commands_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_commands'))
    )
    op.create_index('ix_device_commands_device_id', 'device_commands', ['device_id'])

    op.create_table('message_recipients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('caregiver_id', sa.Integer(), nullable=False),
    sa.Column('mandatory_read', sa.Boolean(), nullable=False),
    sa.Column('delivered_at', UTC, nullable=True),
    sa.Column('read_at', UTC, nullable=True),
    sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'], name=op.f('fk_message_recipients_caregiver_id_caregivers')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_recipients_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_recipients')),
    sa.UniqueConstraint('message_id', 'caregiver_id', name=op.f('uq_message_recipients_message_id_caregiver_id'))
    )
    op.create_index('ix_message_recipients_caregiver_id', 'message_recipients', ['caregiver_id'])

    op.create_table('rejections',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('device_ident', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('topic', sa.String(length=255), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('raw', sa.String(length=1024), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_rejections_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejections'))
    )
    op.create_index('ix_rejections_device_ident', 'rejections', ['device_ident'])
    op.create_index('ix_rejections_device_seq', 'rejections', ['device_id', 'seq'])
    op.create_index('ix_rejections_reason', 'rejections', ['reason'])

    op.create_table('visit_task_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('service_task_id', sa.Integer(), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('at', UTC, nullable=True),
    sa.ForeignKeyConstraint(['service_task_id'], ['service_tasks.id'], name=op.f('fk_visit_task_checks_service_task_id_service_tasks')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_visit_task_checks_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_task_checks')),
    sa.UniqueConstraint('visit_id', 'service_task_id', name=op.f('uq_visit_task_checks_visit_id_service_task_id'))
    )
    op.create_index('ix_visit_task_checks_visit_id', 'visit_task_checks', ['visit_id'])

    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('caregiver_id', sa.Integer(), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('clock_event_id', BIG_ID, nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('acknowledged_at', UTC, nullable=True),
    sa.Column('acknowledged_by', sa.Integer(), nullable=True),
    sa.Column('resolved', sa.Boolean(), nullable=False),
    sa.CheckConstraint("kind IN ('late', 'missing', 'sos', 'device_offline', 'low_battery')", name=op.f('ck_alerts_kind')),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['users.id'], name=op.f('fk_alerts_acknowledged_by_users')),
    sa.ForeignKeyConstraint(['caregiver_id'], ['caregivers.id'], name=op.f('fk_alerts_caregiver_id_caregivers')),
    sa.ForeignKeyConstraint(['clock_event_id'], ['clock_events.id'], name=op.f('fk_alerts_clock_event_id_clock_events')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_alerts_device_id_devices')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_alerts_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_alerts_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index('ix_alerts_organisation_id', 'alerts', ['organisation_id'])

    op.create_table('anomalies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('clock_event_id', BIG_ID, nullable=True),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('resolved', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['clock_event_id'], ['clock_events.id'], name=op.f('fk_anomalies_clock_event_id_clock_events')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_anomalies_device_id_devices')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_anomalies_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_anomalies_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_anomalies'))
    )
    op.create_index('ix_anomalies_clock_event_id', 'anomalies', ['clock_event_id'])
    op.create_index('ix_anomalies_kind', 'anomalies', ['kind'])
    op.create_index('ix_anomalies_organisation_id', 'anomalies', ['organisation_id'])

    op.create_table('visit_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('actual_start', UTC, nullable=True),
    sa.Column('actual_end', UTC, nullable=True),
    sa.Column('retained_start', UTC, nullable=True),
    sa.Column('retained_end', UTC, nullable=True),
    sa.Column('start_event_id', BIG_ID, nullable=True),
    sa.Column('end_event_id', BIG_ID, nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('correction_code', sa.String(length=3), nullable=True),
    sa.Column('corrected_by', sa.Integer(), nullable=True),
    sa.Column('correction_reason', sa.Text(), nullable=True),
    sa.Column('report', sa.Text(), nullable=True),
    sa.Column('km', sa.Integer(), nullable=True),
    sa.Column('expenses_cents', sa.Integer(), nullable=True),
    sa.Column('updated_at', UTC, nullable=False),
    sa.CheckConstraint("correction_code IS NULL OR correction_code IN ('CRE', 'MDT', 'SUP', 'COA', 'COD', 'CO2', 'HOR')", name=op.f('ck_visit_records_correction_code')),
    sa.CheckConstraint("status IN ('in_progress', 'done', 'incomplete', 'validated')", name=op.f('ck_visit_records_status')),
    sa.ForeignKeyConstraint(['corrected_by'], ['users.id'], name=op.f('fk_visit_records_corrected_by_users')),
    sa.ForeignKeyConstraint(['end_event_id'], ['clock_events.id'], name=op.f('fk_visit_records_end_event_id_clock_events')),
    sa.ForeignKeyConstraint(['start_event_id'], ['clock_events.id'], name=op.f('fk_visit_records_start_event_id_clock_events')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_visit_records_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_records')),
    sa.UniqueConstraint('visit_id', name=op.f('uq_visit_records_visit_id'))
    )


def downgrade() -> None:
    op.drop_table('visit_records')
    op.drop_table('anomalies')
    op.drop_table('alerts')
    op.drop_table('visit_task_checks')
    op.drop_table('rejections')
    op.drop_table('message_recipients')
    op.drop_table('device_commands')
    op.drop_table('clock_events')
    op.drop_table('visits')
    op.drop_table('service_tasks')
    op.drop_table('messages')
    op.drop_table('devices')
    op.drop_table('badges')
    op.drop_table('api_keys')
    op.drop_table('users')
    op.drop_table('services')
    op.drop_table('emergency_numbers')
    op.drop_table('clients')
    op.drop_table('caregivers')
    op.drop_table('organisations')
    op.drop_table('ingest_counters')
    op.drop_table('audit_log')
