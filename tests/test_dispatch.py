"""The dispatcher: one line per concurrency key, served oldest first, and no line is ever stranded."""

import frappe

from sync_tweaks.queue import dispatcher as dispatch
from sync_tweaks.queue import maintenance as scheduler
from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import act
from sync_tweaks.utils.sync_job import enqueue_sync_job, enqueue_sync_jobs
from tests.utils import make_source, run_queued, set_type, statuses


def enqueue(source, **params):
	return enqueue_sync_job("Test Single Sync", source_doc=source, **params).name


def ran(names) -> bool:
	"""Every job ran to its end (a repeat sync of an unchanged source ends Skipped)."""
	return set(statuses(names).values()) <= {"Finished", "Skipped"}


def ended_in_order(names) -> bool:
	ends = [frappe.db.get_value("Sync Job", name, "ended_at") for name in names]
	return all(ends) and ends == sorted(ends)


def test_jobs_behind_a_busy_key_run_one_at_a_time_oldest_first():
	source = make_source()
	names = [enqueue(source) for _ in range(4)]
	frappe.db.commit()
	assert list(statuses(names).values()) == ["Queued", "Waiting", "Waiting", "Waiting"]
	assert dispatch.run_dispatch() == [], "nothing behind a busy key is dispatchable"

	run_queued()
	assert ran(names)
	assert ended_in_order(names)


def test_bulk_enqueue_lines_up_jobs_of_one_key_and_runs_them_in_order():
	source = make_source()
	first = enqueue(source)
	frappe.db.commit()
	names = enqueue_sync_jobs("Test Single Sync", [source.name, source.name, make_source().name])
	frappe.db.commit()
	assert statuses([first, *names]) == {
		first: "Queued",
		names[0]: "Waiting",
		names[1]: "Waiting",
		names[2]: "Queued",
	}
	run_queued()
	assert ran([first, *names])
	assert ended_in_order([first, names[0], names[1]])


def test_canceling_the_first_job_of_a_line_moves_the_next_one_up(site_conf):
	site_conf(sync_job_max_queued=1)
	blocker = enqueue(make_source())
	frappe.db.commit()
	source = make_source()
	head, behind = enqueue(source), enqueue(source)
	frappe.db.commit()
	assert statuses([blocker, head, behind]) == {blocker: "Queued", head: "Waiting", behind: "Waiting"}

	act(head, "cancel_sync", "changed my mind")
	frappe.db.commit()
	run_queued()
	assert statuses([head]) == {head: "Canceled"}
	assert ran([blocker, behind])


def test_a_line_that_lost_its_first_job_is_picked_up_by_the_scheduler(site_conf):
	"""A transaction that enqueues behind a job ending at the same moment, or a deleted job, can leave
	a free key whose Waiting jobs are all unmarked; the minute's maintenance finds them."""
	site_conf(sync_job_max_queued=1)
	enqueue(make_source())  # fills the queue
	frappe.db.commit()
	source = make_source()
	stranded = [enqueue(source), enqueue(source)]
	frappe.db.commit()
	frappe.db.sql("update `tabSync Job` set next_in_key=0 where name in %s", (tuple(stranded),))
	frappe.db.commit()
	run_queued()
	assert statuses(stranded) == dict.fromkeys(stranded, "Waiting")

	scheduler.run_maintenance()
	run_queued()
	assert ran(stranded)
	assert ended_in_order(stranded)


def test_newer_jobs_of_a_key_wait_behind_a_pending_retry():
	source = make_source()
	failed = enqueue(source, context={"fail": "until_retry"})
	frappe.db.commit()
	run_queued()
	newer = enqueue(source)
	other = enqueue(make_source())
	frappe.db.commit()
	assert statuses([failed, newer, other]) == {failed: "Failed", newer: "Waiting", other: "Queued"}, (
		"the newer job of the key waits for the retry; other keys are not blocked"
	)
	run_queued()
	assert statuses([newer]) == {newer: "Waiting"}

	scheduler.run_maintenance()  # retry_delay 0: due at once
	run_queued()
	assert ran([failed, newer])
	assert ended_in_order([failed, newer]), "the retry runs before the newer job"


def test_a_job_without_retries_left_frees_its_line_and_a_manual_retry_waits_in_it():
	set_type("Test Single Sync", max_retries=0)
	source = make_source()
	failed = enqueue(source, context={"fail": "error"})
	frappe.db.commit()
	run_queued()
	running = enqueue(source)
	frappe.db.commit()
	assert statuses([failed, running]) == {failed: "Failed", running: "Queued"}, "the line moved on"

	act(failed, "retry")
	frappe.db.commit()
	assert statuses([failed]) == {failed: "Waiting"}
	assert dispatch.run_dispatch() == []
	run_queued()
	assert statuses([failed]) == {failed: "Failed"}
	assert ran([running])
