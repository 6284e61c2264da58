"""Pause / resume a type at once on every worker, the circuit breaker and its notification."""

import frappe
import pytest
from click.testing import CliRunner

from sync_tweaks import doctor
from sync_tweaks.commands import sync_job
from sync_tweaks.queue import breaker, maintenance
from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import pause_type, resume_type
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.utils import make_source, run_queued, set_type, statuses, wait_for, wait_for_status

TYPE = "Test Single Sync"


def enqueue(**params):
	return enqueue_sync_job(TYPE, source_doc=make_source(), **params).name


def test_paused_type_accepts_jobs_but_starts_none_until_resumed(workers):
	queued_before = enqueue()  # pushed to RQ before the pause: its claim puts it back
	frappe.db.commit()
	assert pause_type(TYPE, "maintenance window")
	frappe.db.commit()
	waiting = [enqueue() for _ in range(3)]
	frappe.db.commit()
	workers(1)

	def handed_back():
		# the claim hands it back; should RQ drop its RQ job first (RQ 2 fails jobs it finds in its
		# intermediate queue when a worker starts), the minute's maintenance puts it back instead
		if statuses([queued_before])[queued_before] != "Waiting":
			maintenance.requeue_vanished()
			frappe.db.commit()
		return statuses([queued_before])[queued_before] == "Waiting"

	wait_for(handed_back, 60, interval=1, message="hand back")
	assert set(statuses(waiting).values()) == {"Waiting"}, "new jobs are accepted and wait"
	assert frappe.db.get_value("Sync Job", queued_before, "retry_count") == 0

	assert resume_type(TYPE)
	frappe.db.commit()  # resume dispatches what waits, no minute tick needed
	assert set(wait_for_status([queued_before, *waiting], timeout=60).values()) == {"Finished"}


def test_running_jobs_finish_when_their_type_is_paused(workers):
	name = enqueue(context={"sleep": 2})
	frappe.db.commit()
	workers(1)
	wait_for(lambda: statuses([name])[name] == "Started", 30, message="started")
	pause_type(TYPE, "now")
	frappe.db.commit()
	assert wait_for_status([name], timeout=30) == {name: "Finished"}


def test_pause_and_resume_need_write_permission_on_the_type():
	from tests.test_security import as_user, call_doc_method

	job_type = frappe.get_doc("Sync Job Type", TYPE)
	with as_user("pause-nobody@example.com", []):
		with pytest.raises(frappe.PermissionError):
			call_doc_method(job_type, "pause", reason="not mine")
	assert not frappe.db.get_value("Sync Job Type", TYPE, "paused")
	with as_user("pause-manager@example.com", ["System Manager"]):
		call_doc_method(job_type, "pause", reason="mine")
		frappe.db.commit()
	assert frappe.db.get_value("Sync Job Type", TYPE, "paused") == 1
	with as_user("pause-nobody@example.com", []):
		with pytest.raises(frappe.PermissionError):
			call_doc_method(job_type, "resume")
	assert frappe.db.get_value("Sync Job Type", TYPE, "paused") == 1


def test_a_save_of_a_stale_form_does_not_resume_a_paused_type():
	stale = frappe.get_doc("Sync Job Type", TYPE)
	pause_type(TYPE, "breaker")
	frappe.db.commit()
	stale.paused = 0
	stale.modified = frappe.db.get_value("Sync Job Type", TYPE, "modified")  # the form reloaded
	frappe.flags.in_import = True  # a standard type: no export of its JSON from a test
	try:
		stale.save()
	finally:
		frappe.flags.in_import = False
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job Type", TYPE, "paused") == 1


def test_cli_pause_resume_and_doctor(cli):
	result = cli("pause", TYPE, "--reason", "shop is down")
	assert result.exit_code == 0 and f"Paused {TYPE}" in result.output
	assert frappe.db.get_value("Sync Job Type", TYPE, ["paused", "paused_reason"]) == (1, "shop is down")
	assert cli("pause", TYPE).output.strip() == f"{TYPE} was already paused"
	name = enqueue()
	frappe.db.commit()
	findings = [f for f in doctor.run(TYPE) if f.check == "paused"]
	assert findings and "shop is down" in findings[0].problem and "1 job(s) wait" in findings[0].problem
	result = cli("resume", TYPE)
	assert result.exit_code == 0 and f"Resumed {TYPE} (1 waiting)" in result.output
	assert statuses([name]) == {name: "Queued"}, "resume dispatched the waiting job"
	assert cli("pause", "No Such Type").exit_code == 1


def test_the_circuit_breaker_pauses_after_n_consecutive_failures_and_notifies():
	set_type(TYPE, pause_after_failures=3, max_retries=0)
	ok = enqueue()
	frappe.db.commit()
	run_queued()
	failing = [enqueue(context={"fail": "error"}) for _ in range(2)]
	frappe.db.commit()
	run_queued()
	assert not frappe.db.get_value("Sync Job Type", TYPE, "paused"), "two failures, threshold three"
	enqueue()  # a success resets the count
	frappe.db.commit()
	run_queued()
	assert breaker.consecutive_failures(TYPE) == 0
	failing += [enqueue(context={"fail": "error"}) for _ in range(3)]
	frappe.db.commit()
	run_queued()
	paused, reason = frappe.db.get_value("Sync Job Type", TYPE, ["paused", "paused_reason"])
	assert paused == 1 and "3 consecutive failed runs" in reason
	notes = frappe.get_all(
		"Notification Log",
		filters={"document_type": "Sync Job Type", "document_name": TYPE},
		fields=["for_user", "subject"],
	)
	managers = set(
		frappe.db.sql_list(
			"""select distinct u.name from `tabUser` u join `tabHas Role` r on r.parent=u.name
			where r.role='System Manager' and u.enabled=1"""
		)
	)
	assert {n.for_user for n in notes} == managers and "paused itself" in notes[0].subject
	later = enqueue()
	frappe.db.commit()
	assert statuses([later, ok]) == {later: "Waiting", ok: "Finished"}


def test_a_run_ending_in_conflict_resets_the_breaker():
	"""A run that ends in Conflict did not fail: it resets the count of consecutive failed runs."""
	from sync_tweaks.queue import breaker, maintenance, states

	set_type("Test Bypass Sync", concurrency="None", pause_after_failures=3)
	name = enqueue_sync_job("Test Bypass Sync", context={"note": "r16"}).name
	frappe.db.commit()
	frappe.db.set_value("Sync Job", name, {"status": "Started"}, update_modified=False)
	frappe.db.commit()
	cache = frappe.cache()
	cache.set(breaker._key("Test Bypass Sync"), 2)
	job = frappe.get_doc("Sync Job", name)
	states.mark_conflict(job)
	frappe.db.commit()
	assert breaker.consecutive_failures("Test Bypass Sync") == 0, "the Conflict run did not reset the count"
