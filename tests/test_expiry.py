"""expire_after: a job still Pending/Waiting that long after creation ends Canceled, never runs late."""

import frappe
from frappe.utils import add_to_date, now_datetime

from sync_tweaks.queue import dispatcher, maintenance
from sync_tweaks.utils.sync_job import create_sync_job, enqueue_sync_job
from tests.utils import make_source, run_queued, set_type, statuses


def backdate(names, minutes: int):
	frappe.db.sql(
		"update `tabSync Job` set creation=%s where name in %s",
		(add_to_date(now_datetime(), minutes=-minutes), tuple(names)),
	)
	frappe.db.commit()


def test_maintenance_cancels_expired_pending_and_waiting_jobs():
	set_type("Test Single Sync", expire_after=5)
	source = make_source()
	running = enqueue_sync_job("Test Single Sync", source_doc=source).name  # holds the key
	waiting = enqueue_sync_job("Test Single Sync", source_doc=source).name
	pending = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False).name
	fresh = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False).name
	frappe.db.commit()
	backdate([waiting, pending, running], 6)
	maintenance.run_maintenance()
	frappe.db.rollback()
	assert statuses([waiting, pending, fresh, running]) == {
		waiting: "Canceled",
		pending: "Canceled",
		fresh: "Pending",
		running: "Queued",
	}, "Queued jobs are not Pending/Waiting: they run"
	assert frappe.db.get_value("Sync Job", waiting, "cancel_reason") == "expired after 5 min"


def test_the_dispatcher_never_pushes_an_expired_job_and_the_claim_cancels_one():
	set_type("Test Single Sync", expire_after=1)
	set_type("Test Single Sync", concurrency="Per Type")
	first = enqueue_sync_job("Test Single Sync", source_doc=make_source()).name
	behind = enqueue_sync_job("Test Single Sync", source_doc=make_source()).name
	frappe.db.commit()
	assert statuses([first, behind]) == {first: "Queued", behind: "Waiting"}
	backdate([first, behind], 2)
	run_queued()  # the claim: expired while Queued
	assert statuses([first]) == {first: "Canceled"}
	assert frappe.db.get_value("Sync Job", first, "cancel_reason") == "expired after 1 min"
	assert dispatcher.run_dispatch() == [] and statuses([behind]) == {behind: "Waiting"}, (
		"the expired head of the line is not pushed"
	)
