"""`sync-job doctor`: each check finds what it should, a healthy site has no findings, the form banner."""

import contextlib
import time
from datetime import timedelta

import frappe
import pytest
from click.testing import CliRunner
from frappe.utils import now_datetime
from frappe.utils.background_jobs import get_queue
from rq import Worker

from sync_tweaks import doctor
from sync_tweaks.commands import sync_job
from sync_tweaks.queue import slots
from sync_tweaks.queue import workers as rq_workers
from sync_tweaks.utils.sync_job import create_sync_job, enqueue_sync_job
from tests.conftest import REAL_SITE
from tests.test_security import as_user, call
from tests.utils import make_source, set_type, wait_for

BANNER = "sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type.get_doctor_findings"
LONG_AGO = timedelta(hours=2)


@contextlib.contextmanager
def scheduler_enabled():
	"""Enable the scheduler, with recent user activity, in this transaction only (nothing may commit
	inside): no real scheduler starts. A fresh real site has no Activity Log and counts as dormant."""
	frappe.db.set_single_value("System Settings", "enable_scheduler", 1)
	if frappe.db.exists("DocType", "Activity Log"):
		frappe.get_doc(
			{
				"doctype": "Activity Log",
				"subject": "sync_tweaks test",
				"operation": "Login",
				"status": "Success",
			}
		).insert(ignore_permissions=True)
	try:
		yield
	finally:
		frappe.db.rollback()
		frappe.db.value_cache.pop("System Settings", None)


def checks(findings) -> set[str]:
	return {finding.check for finding in findings}


def finding(check: str, sync_job_type: str | None = None):
	found = [f for f in doctor.run(sync_job_type) if f.check == check]
	assert len(found) <= 1, found
	return found[0] if found else None


def pending_job(type_name="Test Single Sync", **fields):
	"""A committed job put straight into a status (no dispatch runs for it)."""
	job = create_sync_job(type_name, source_doc=make_source(), queue_on_insert=False)
	frappe.db.set_value("Sync Job", job.name, fields, update_modified="modified" not in fields)
	frappe.db.commit()
	return job.name


def test_broken_controller_of_an_enabled_type_is_found_until_disabled():
	found = finding("controller")
	assert found and "Test Broken Sync" in found.problem and "not a valid sync controller" in found.problem
	assert "disable the type" in found.fix
	set_type("Test Broken Sync", disabled=1)
	assert finding("controller") is None


def test_disabled_scheduler_is_found():
	with scheduler_enabled():
		assert finding("scheduler") is None
		frappe.db.set_single_value("System Settings", "enable_scheduler", 0)
		found = finding("scheduler")
	assert found and "disabled" in found.problem and "enable-scheduler" in found.fix


@contextlib.contextmanager
def fresh_dormancy():
	"""Frappe 15.101 caches is_dormant() in Redis for an hour (@redis_cache): forget it around a test,
	so neither a cached answer nor this test's dormant one outlives it."""
	from frappe.utils import scheduler

	clear = getattr(scheduler.is_dormant, "clear_cache", lambda: None)
	clear()
	try:
		yield
	finally:
		clear()


@pytest.mark.skipif(not REAL_SITE, reason="the stand-in has no Activity Log: it is never dormant")
def test_a_dormant_site_is_found():
	"""Dormant by the rules of either Frappe: 15.29 looks at the newest Activity Log; 15.101 at the
	newest User.last_active, and only on Frappe Cloud sites out of developer mode."""
	from unittest import mock

	with scheduler_enabled(), fresh_dormancy():
		assert finding("scheduler") is None
		frappe.db.delete("Activity Log")  # rolled back by scheduler_enabled
		frappe.db.sql("update `tabUser` set last_active = null")  # likewise
		with (
			mock.patch("frappe.utils.frappecloud.on_frappecloud", return_value=True),
			mock.patch.dict(frappe.conf, {"developer_mode": 0}),
			fresh_dormancy(),
		):
			found = finding("scheduler")
	assert found and "dormant" in found.problem and "dormant_days" in found.fix


def test_job_started_past_timeout_and_grace_is_stuck():
	grace = slots.grace_seconds()
	recent = pending_job(status="Started", deadline_at=time.time() - grace)
	stuck = pending_job(status="Started", deadline_at=time.time() - grace - 65)
	found = finding("stuck_started")
	assert found and found.jobs == (stuck,) and recent not in found.jobs
	assert "run_maintenance" in found.fix


def test_job_queued_past_timeout_and_grace_is_stuck():
	stuck = pending_job(status="Queued", modified=now_datetime() - LONG_AGO)
	pending_job(status="Queued")
	found = finding("stuck_queued")
	assert found and found.jobs == (stuck,) and "worker" in found.fix


def test_waiting_job_with_a_free_slot_is_stuck_but_not_one_behind_an_active_job():
	source = make_source()
	active = enqueue_sync_job("Test Single Sync", source_doc=source)
	frappe.db.commit()  # dispatched: Queued, and no worker takes it
	assert frappe.db.get_value("Sync Job", active.name, "status") == "Queued"
	stuck = pending_job(status="Waiting", modified=now_datetime() - LONG_AGO)
	behind = create_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False)
	frappe.db.set_value("Sync Job", behind.name, {"status": "Waiting", "modified": now_datetime() - LONG_AGO})
	frappe.db.commit()
	found = finding("stuck_waiting")
	assert found and found.jobs == (stuck,) and "run_dispatch" in found.fix


def test_waiting_job_whose_slot_is_held_is_not_stuck():
	name = pending_job(status="Waiting", modified=now_datetime() - LONG_AGO)
	key = frappe.db.get_value("Sync Job", name, "concurrency_key")
	assert slots.acquire(key, "someone-else", 60)
	assert finding("stuck_waiting") is None


def test_failed_job_long_past_its_retry_is_found():
	overdue = pending_job(status="Failed", due_at=time.time() - LONG_AGO.total_seconds())
	pending_job(status="Failed", due_at=time.time() - 30)
	pending_job(status="Failed", due_at=0)
	found = finding("overdue_retries")
	assert found and found.jobs == (overdue,) and "sync-job retry --failed" in found.fix


def test_queue_without_workers_is_found():
	queue = next((q for q in ("long", "short", "default") if not rq_workers.live_workers(q)), None)
	if not queue:
		pytest.skip("every queue has a live worker on this Redis")
	set_type("Test Single Sync", queue=queue)
	found = [f for f in doctor.run() if f.check == "workers" and queue in f.problem]
	assert found and f"bench worker --queue {queue}" in found[0].fix


def test_findings_are_scoped_to_one_type():
	pending_job(status="Failed", due_at=time.time() - LONG_AGO.total_seconds())
	assert "controller" not in checks(doctor.run("Test Single Sync"))
	assert "overdue_retries" not in checks(doctor.run("Test Broken Sync"))
	assert {"controller", "overdue_retries"} <= checks(doctor.run())


@pytest.mark.slow
def test_healthy_site_has_no_findings_and_exit_code_0(host, workers):
	set_type("Test Broken Sync", disabled=1)
	workers(1, "default")
	wait_for(lambda: Worker.all(queue=get_queue("default")), timeout=30, message="a worker on default")
	with scheduler_enabled():
		assert doctor.run("Test Single Sync") == []
		result = invoke(host, "doctor", "--type", "Test Single Sync")
		# a real site may hold other apps' types; the stand-in holds only the fixtures
		everything = None if host.real else invoke(host, "doctor")
	assert (result.exit_code, result.output.strip()) == (0, "No problems found")
	assert everything is None or (everything.exit_code, everything.output.strip()) == (0, "No problems found")


def test_doctor_command_exits_1_and_prints_problem_and_fix(host):
	result = invoke(host, "doctor")
	assert result.exit_code == 1
	assert "✗ Sync Job Type Test Broken Sync" in result.output and "Fix: " in result.output
	result = invoke(host, "doctor", "--json")
	assert result.exit_code == 1
	assert "controller" in {f["check"] for f in frappe.parse_json(result.output)}


def test_form_banner_needs_read_permission_on_the_type():
	frappe.clear_messages()
	findings = call(BANNER, sync_job_type="Test Broken Sync")
	assert "controller" in {f["check"] for f in findings} and all("jobs" not in f for f in findings)
	assert frappe.local.message_log == []  # no message dialog pops up over the form
	with as_user("doctor-nobody@example.com", []), pytest.raises(frappe.PermissionError):
		call(BANNER, sync_job_type="Test Broken Sync")


def invoke(host, *args):
	obj = {"sites": [host.site], "force": False, "verbose": False, "profile": False}
	result = CliRunner().invoke(sync_job, list(args), obj=obj)
	if result.exception and not isinstance(result.exception, SystemExit):
		raise result.exception
	return result
