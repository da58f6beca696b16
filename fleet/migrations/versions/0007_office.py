"""the office side: corrections, validation, funders and funding plans, visit alerts, the outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Written out by hand like 0001 (no import of app code).
UTC = sa.DateTime(timezone=True)

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_DEVICE = "'device_offline', 'low_battery', 'reader_failed', 'clock_drift', 'journal_full'"
OLD_ALERT_KINDS = "kind IN ('late', 'missing', 'sos', " + _DEVICE + ")"
ALERT_KINDS = "kind IN ('late', 'missing', 'missed', 'sos', " + _DEVICE + ")"


def upgrade() -> None:
    op.create_table('funders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('identifier', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.CheckConstraint("kind IN ('APA', 'PCH', 'AM')", name=op.f('ck_funders_kind')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_funders_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_funders')),
    sa.UniqueConstraint('organisation_id', 'name', name=op.f('uq_funders_organisation_id_name'))
    )
    with op.batch_alter_table('funders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_funders_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('month_validations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('validated_at', UTC, nullable=False),
    sa.Column('validated_who', sa.String(length=200), nullable=False),
    sa.Column('visits', sa.Integer(), nullable=False),
    sa.Column('reopened_at', UTC, nullable=True),
    sa.Column('reopened_who', sa.String(length=200), nullable=True),
    sa.Column('reopen_why', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_month_validations_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_month_validations'))
    )
    with op.batch_alter_table('month_validations', schema=None) as batch_op:
        batch_op.create_index('ix_month_validations_org_month', ['organisation_id', 'month'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=400), nullable=False),
    sa.Column('subject', sa.String(length=400), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', UTC, nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('sent_at', UTC, nullable=True),
    sa.CheckConstraint("channel IN ('email', 'webpush', 'webhook')", name=op.f('ck_outbox_channel')),
    sa.CheckConstraint("state IN ('pending', 'sent', 'dead')", name=op.f('ck_outbox_state')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_outbox_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_outbox_dedupe_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_state_next', ['state', 'next_attempt_at'], unique=False)

    op.create_table('funding_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('funder_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('beneficiary_ref', sa.String(length=64), nullable=False),
    sa.Column('minutes_per_month', sa.Integer(), nullable=True),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_funding_plans_client_id_clients')),
    sa.ForeignKeyConstraint(['funder_id'], ['funders.id'], name=op.f('fk_funding_plans_funder_id_funders')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_funding_plans_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_funding_plans_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_funding_plans'))
    )
    with op.batch_alter_table('funding_plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_funding_plans_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_funding_plans_funder_id'), ['funder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_funding_plans_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('visit_corrections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=3), nullable=False),
    sa.Column('arrival', UTC, nullable=True),
    sa.Column('departure', UTC, nullable=True),
    sa.Column('why', sa.Text(), nullable=False),
    sa.Column('who', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=True),
    sa.Column('at', UTC, nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("code IN ('CRE', 'MDT', 'SUP', 'COA', 'COD', 'CO2', 'HOR')", name=op.f('ck_visit_corrections_code')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_visit_corrections_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['visit_corrections.id'], name=op.f('fk_visit_corrections_supersedes_id_visit_corrections')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_visit_corrections_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_corrections'))
    )
    with op.batch_alter_table('visit_corrections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_corrections_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_visit_corrections_visit_id'), ['visit_id'], unique=False)

    with op.batch_alter_table('alert_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('late_after_min', sa.Integer(), nullable=False, server_default='15'))
        batch_op.add_column(sa.Column('missed_after_min', sa.Integer(), nullable=False, server_default='60'))
        batch_op.add_column(sa.Column('oncall_emails', sa.Text(), nullable=False, server_default=''))

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_alerts_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_alerts_kind'), sa.text(ALERT_KINDS))
        batch_op.create_index('uq_alerts_visit_kind', ['visit_id', 'kind'], unique=True, sqlite_where=sa.text("visit_id IS NOT NULL AND kind IN ('late', 'missed')"), postgresql_where=sa.text("visit_id IS NOT NULL AND kind IN ('late', 'missed')"))

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('postcode', sa.String(length=10), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('city', sa.String(length=100), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('birth_date', sa.Date(), nullable=True))

    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overrun_policy', sa.String(length=8), nullable=False, server_default='bill'))
        batch_op.add_column(sa.Column('siret', sa.String(length=14), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('esppadom_id', sa.String(length=64), nullable=False, server_default=''))
        batch_op.create_check_constraint(op.f('ck_organisations_overrun_policy'),
                                         sa.text("overrun_policy IN ('bill', 'cap')"))

    with op.batch_alter_table('visit_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('corrected_who', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('corrected_at', UTC, nullable=True))
        batch_op.add_column(sa.Column('validated_at', UTC, nullable=True))
        batch_op.add_column(sa.Column('validated_who', sa.String(length=200), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('visit_records', schema=None) as batch_op:
        batch_op.drop_column('validated_who')
        batch_op.drop_column('validated_at')
        batch_op.drop_column('corrected_at')
        batch_op.drop_column('corrected_who')

    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_organisations_overrun_policy'), type_='check')
        batch_op.drop_column('esppadom_id')
        batch_op.drop_column('siret')
        batch_op.drop_column('overrun_policy')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('birth_date')
        batch_op.drop_column('city')
        batch_op.drop_column('postcode')

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_alerts_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_alerts_kind'), sa.text(OLD_ALERT_KINDS))
        batch_op.drop_index('uq_alerts_visit_kind', sqlite_where=sa.text("visit_id IS NOT NULL AND kind IN ('late', 'missed')"), postgresql_where=sa.text("visit_id IS NOT NULL AND kind IN ('late', 'missed')"))

    with op.batch_alter_table('alert_settings', schema=None) as batch_op:
        batch_op.drop_column('oncall_emails')
        batch_op.drop_column('missed_after_min')
        batch_op.drop_column('late_after_min')

    with op.batch_alter_table('visit_corrections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_corrections_visit_id'))
        batch_op.drop_index(batch_op.f('ix_visit_corrections_organisation_id'))

    op.drop_table('visit_corrections')
    with op.batch_alter_table('funding_plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_funding_plans_organisation_id'))
        batch_op.drop_index(batch_op.f('ix_funding_plans_funder_id'))
        batch_op.drop_index(batch_op.f('ix_funding_plans_client_id'))

    op.drop_table('funding_plans')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_state_next')

    op.drop_table('outbox')
    with op.batch_alter_table('month_validations', schema=None) as batch_op:
        batch_op.drop_index('ix_month_validations_org_month')

    op.drop_table('month_validations')
    with op.batch_alter_table('funders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_funders_organisation_id'))

    op.drop_table('funders')
