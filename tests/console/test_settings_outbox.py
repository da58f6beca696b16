"""The console's settings page (/settings), outbox page (/outbox) and the open visit alerts on
the board."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from fleet import outbox, visit_alerts
from fleet.models import AlertSettings, AuditLog, Organisation, Outbox
from tests.console.conftest import csrf_of
from tests.helpers import unstarted_visit

NOW = datetime.now(timezone.utc)


def settings_form(page: str, **changes) -> dict:
    data = {"csrf": csrf_of(page), "timezone": "Europe/Paris", "tolerance_min": "30",
            "rounding_mode": "none", "rounding_step_min": "15", "overrun_policy": "bill",
            "late_after_min": "15", "missed_after_min": "60", "oncall_emails": ""}
    return {**data, **changes}


def test_a_manager_saves_thresholds_and_oncall_emails(as_role, db):
    c = as_role("manager")
    page = c.get("/settings")
    assert page.status_code == 200 and 'id="settings-form"' in page.text
    assert "Settings" in page.text and "Réglages" not in page.text
    r = c.post("/settings", data=settings_form(
        page.text, late_after_min="10", missed_after_min="40", overrun_policy="cap",
        rounding_mode="nearest", rounding_step_min="30",
        oncall_emails="astreinte@agence.fr\nnuit@agence.fr; ASTREINTE@agence.fr"))
    assert r.status_code == 200 and "Saved" in r.text
    assert 'value="10"' in r.text and "astreinte@agence.fr\nnuit@agence.fr" in r.text
    with db() as s:
        org = s.scalars(select(Organisation).order_by(Organisation.id)).first()
        row = s.get(AlertSettings, org.id)
        assert (row.late_after_min, row.missed_after_min) == (10, 40)
        assert row.oncall_emails == "astreinte@agence.fr, nuit@agence.fr"
        assert (org.overrun_policy, org.rounding_mode, org.rounding_step_min) == \
            ("cap", "nearest", 30)
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "settings")).one()
        assert entry.who == "user:manager@agency.fr" and entry.role == "manager"
        assert entry.detail["changed"]["missed_after_min"] == [60, 40]


def test_a_bad_address_is_named_and_nothing_saved(as_role, db):
    c = as_role("admin")
    page = c.get("/settings").text
    r = c.post("/settings", data=settings_form(page, late_after_min="5",
                                               oncall_emails="ok@agence.fr\nnot-an-address"))
    assert r.status_code == 422
    assert "&#39;not-an-address&#39; is not an e-mail address" in r.text
    assert "not-an-address</textarea>" in r.text  # the person's values are kept
    r = c.post("/settings", data=settings_form(page, late_after_min="90"))
    assert r.status_code == 422 and "must be longer than the late threshold" in r.text
    with db() as s:
        assert s.scalars(select(AlertSettings)).first() is None
        assert s.scalars(select(AuditLog).where(AuditLog.action == "settings")).first() is None


def test_settings_need_csrf_and_a_planner(as_role):
    c = as_role("manager")
    page = c.get("/settings").text
    r = c.post("/settings", data={**settings_form(page), "csrf": "forged"})
    assert r.status_code == 403 and "Form refused" in r.text
    t = as_role("technician")
    assert t.get("/settings").status_code == 403
    assert t.get("/outbox").status_code == 403
    assert "/settings" not in t.get("/devices").text


def _queue(db, state: str, error: str | None = None) -> int:
    with db() as s:
        org = s.scalars(select(Organisation).order_by(Organisation.id)).first()
        outbox.enqueue_email(s, organisation_id=org.id, to="astreinte@agence.fr",
                             subject=f"Intervention manquée · Missed visit {state}", body="…",
                             dedupe_key=f"test:{state}")
        s.flush()
        row = s.scalars(select(Outbox).where(Outbox.dedupe_key == f"test:{state}")).one()
        row.state, row.last_error, row.attempts = state, error, 8 if state == "dead" else 1
        if state == "sent":
            row.sent_at = NOW
        s.commit()
        return row.id


def test_outbox_lists_rows_and_a_dead_letter_is_sent_again(as_role, db):
    sent = _queue(db, "sent")
    dead = _queue(db, "dead", "451 4.3.0 mailbox busy")
    c = as_role("manager")
    page = c.get("/outbox").text
    assert "Missed visit sent" in page and "Missed visit dead" in page
    assert "451 4.3.0 mailbox busy" in page
    assert f'action="/outbox/{dead}/retry"' in page and f'action="/outbox/{sent}/retry"' not in page
    assert "Missed visit sent" not in c.get("/outbox?state=dead").text
    r = c.post(f"/outbox/{dead}/retry", data={"csrf": csrf_of(page)})
    assert r.status_code == 200 and "Sent again" in r.text
    with db() as s:
        row = s.get(Outbox, dead)
        assert (row.state, row.attempts) == ("pending", 0)
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "retry")).one()
        assert entry.target == f"outbox:{dead}" and entry.who == "user:manager@agency.fr"
        assert entry.detail["last_error"] == "451 4.3.0 mailbox busy"
    r = c.post(f"/outbox/{sent}/retry", data={"csrf": csrf_of(page)})
    assert "Only a failed e-mail can be sent again" in r.text
    assert c.post("/outbox/999999/retry", data={"csrf": csrf_of(page)}).status_code == 404
    assert c.post(f"/outbox/{dead}/retry", data={"csrf": "forged"}).status_code == 403


def test_the_board_shows_open_visit_alerts(as_role, db):
    c = as_role("manager")
    with db() as s:
        visit = unstarted_visit(s, 20)
        visit_alerts.sweep(s, datetime.now(timezone.utc))
        s.commit()
        assert visit_alerts.open_by_visit(s, [visit.id]) == {visit.id: "late"}
        day = visit.planned_start.astimezone(ZoneInfo("Europe/Paris")).date().isoformat()
        visit_id = visit.id
    rows = c.get(f"/board/rows?day={day}").text
    row = rows[rows.index(f'data-visit="{visit_id}"'):]
    row = row[:row.index("</tr>")]
    assert "alert-late" in row and "late alert" in row
    assert '"status">late <' in row  # past the alert threshold, within the tolerance
    assert f'data-visit="{visit_id}"' in c.get(f"/board/rows?day={day}&status=late").text
