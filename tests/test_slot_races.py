"""Slots under racing dispatchers: the holder is the job's name, so a dispatcher that loses the race
for a job must not free the slot the winner holds (found by a review of the re-entrant acquire)."""

import frappe

from sync_tweaks.queue import dispatcher, slots
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.utils import make_source, statuses


def test_a_dispatcher_that_loses_the_race_for_a_job_keeps_the_winners_slot():
	source = make_source()
	job = enqueue_sync_job("Test Single Sync", source_doc=source)
	name, key = job.name, job.concurrency_key
	# what a second, concurrent dispatch read as its candidate while the job was still Waiting
	stale = frappe._dict(name=name, concurrency_key=key, queue=job.queue, timeout=job.timeout)
	frappe.db.commit()  # the first dispatch takes it: Queued under its slot
	assert statuses([name])[name] == "Queued"
	assert slots.holder(key) == name

	# the second dispatch: acquire succeeds again (same holder), the row is no longer Waiting (on
	# MariaDB: skipped, locked by the first), so it "releases the slot it took" — the winner's
	assert dispatcher._take([stale], set()) == []
	frappe.db.rollback()
	assert statuses([name])[name] == "Queued"
	assert slots.holder(key) == name, "the Queued job's slot was freed by the dispatcher that lost"


def test_canceling_a_waiting_job_frees_a_slot_a_rolled_back_dispatch_left_under_its_name():
	from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import act

	source = make_source()
	head = enqueue_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False)
	behind = enqueue_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False)
	frappe.db.sql(
		"update `tabSync Job` set status='Waiting', next_in_key=0 where name in %s",
		((head.name, behind.name),),
	)
	frappe.db.commit()
	assert slots.acquire(head.concurrency_key, head.name, 60) == slots.TOOK  # left by a rollback
	act(head.name, "cancel_sync")
	frappe.db.commit()
	assert statuses([behind.name])[behind.name] == "Queued", "the line moved on at once"
	assert slots.holder(head.concurrency_key) == behind.name
