"""SyncJobRetryAfter: the job waits until then without using a retry, its line waits behind it, and
after `max_deferrals` it fails normally."""

import time

import frappe

from sync_tweaks.engine.status import S
from sync_tweaks.queue import dispatcher
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.utils import make_source, run_queued, set_type, statuses, wait_for_status


def enqueue(source, **context):
	return enqueue_sync_job("Test Single Sync", source_doc=source, context=context or None).name


def test_a_deferred_job_waits_without_using_a_retry_and_holds_its_line():
	source = make_source()
	deferred = enqueue(source, retry_after=600, retry_reason="HTTP 429 from the shop")
	frappe.db.commit()
	run_queued()
	newer = enqueue(source)
	other = enqueue(make_source())
	frappe.db.commit()
	job = frappe.get_doc("Sync Job", deferred)
	assert job.status == S.WAITING and job.retry_count == 0 and job.deferral_count == 1
	assert job.deferred_reason == "HTTP 429 from the shop"
	assert 590 < job.due_at - time.time() <= 600 and job.retry_after
	job.run_method("onload")
	assert job.get_onload("deferred")["reason"] == "HTTP 429 from the shop"
	assert statuses([newer, other]) == {newer: "Waiting", other: "Queued"}, "the key's line waits behind it"
	assert dispatcher.run_dispatch() == [], "nothing of the line is dispatched before the deferral ends"
	run_queued()
	assert statuses([deferred, newer]) == {deferred: "Waiting", newer: "Waiting"}


def test_a_short_deferral_runs_again_when_due_then_the_line_moves_on(workers):
	source = make_source()
	deferred = enqueue(source, retry_after=2)
	frappe.db.commit()
	newer = enqueue(source)
	frappe.db.commit()
	workers(1)
	final = wait_for_status([deferred, newer], wanted=["Finished", "Skipped", "Failed"], timeout=45)
	assert final[deferred] == "Finished" and final[newer] in ("Finished", "Skipped"), final
	job = frappe.get_doc("Sync Job", deferred)
	assert job.retry_count == 0 and job.deferral_count == 1
	newer_started = frappe.db.get_value("Sync Job", newer, "started_at")
	assert newer_started > job.started_at, "the newer job of the key ran after the deferred one"


def test_after_max_deferrals_the_job_fails_normally():
	set_type("Test Single Sync", max_deferrals=1, max_retries=0)
	name = enqueue(make_source(), retry_after=0, defer_times=5, retry_reason="503 maintenance")
	frappe.db.commit()
	run_queued()  # deferred for 0 s: queued again at once, and the second deferral is one too many
	job = frappe.get_doc("Sync Job", name)
	assert job.status == S.FAILED and job.deferral_count == 1
	assert "deferred 1 times" in job.error_message and "503 maintenance" in job.error_message
	assert job.error_signature and "SyncJobRetryAfter" in job.error_title
