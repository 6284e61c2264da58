"""Concurrency keys, crash recovery, Redis loss and duplicate deliveries, with real worker processes."""

import signal
import time
from collections import defaultdict

import frappe
import pytest
from frappe.utils.background_jobs import get_job, get_queue
from sync_tweaks_tests.recorder import events

from sync_tweaks.queue import dispatcher as dispatch
from sync_tweaks.queue import maintenance as scheduler
from sync_tweaks.queue import states
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.conftest import REAL_SITE, stop_process_group
from tests.utils import kill_whole_worker, make_source, set_type, statuses, wait_for, wait_for_status

pytestmark = pytest.mark.slow
SLOW = "Test Slow Sync"


def test_per_source_order_and_parallelism_across_sources(workers):
	sources = [make_source() for _ in range(8)]
	names = []
	for seq in range(4):
		for source in sources:
			names.append(enqueue_sync_job(SLOW, source_doc=source, context={"sleep": 0.25, "seq": seq}).name)
	frappe.db.commit()
	workers(2)
	assert set(wait_for_status(names, timeout=120).values()) == {"Finished"}

	runs = defaultdict(dict)
	for event in events():
		runs[event["job"]][event["event"]] = event
	missing = {
		name: (
			runs.get(name),
			frappe.db.get_value("Sync Job", name, ["status", "error_message", "started_at", "job_id"]),
		)
		for name in names
		if "start" not in runs.get(name, {})
	}
	assert not missing, missing
	per_source = defaultdict(list)
	for name in names:
		per_source[runs[name]["start"]["source"]].append(runs[name])
	for source_runs in per_source.values():
		ordered = sorted(source_runs, key=lambda r: r["start"]["at"])
		assert [r["start"]["seq"] for r in ordered] == [0, 1, 2, 3], "same-source jobs run in creation order"
		for earlier, later in zip(ordered, ordered[1:], strict=False):
			assert earlier["end"]["at"] <= later["start"]["at"], "same-source jobs never overlap"
	intervals = sorted((runs[n]["start"]["at"], runs[n]["end"]["at"]) for n in names)
	overlaps = sum(1 for (s1, e1), (s2, e2) in zip(intervals, intervals[1:], strict=False) if s2 < e1)
	assert overlaps > 0, "different sources run in parallel on the two workers"


@pytest.mark.skipif(
	not REAL_SITE,
	reason="SQLite has one writer: the caller's open transaction would block the worker's commit",
)
def test_a_job_enqueued_while_its_keys_job_ends_runs_without_the_scheduler(workers):
	"""The caller's transaction inserts a job behind the key's running job and commits only after that
	job ended: whichever side commits last must queue it (no line waits for the minute's maintenance)."""
	source = make_source()
	first = enqueue_sync_job(SLOW, source_doc=source, context={"sleep": 0.5}).name
	frappe.db.commit()
	workers(1)
	wait_for(lambda: events(first, "start"), timeout=30, message="the first job to start")
	rq_job = get_job(frappe.db.get_value("Sync Job", first, "job_id"))

	behind = enqueue_sync_job(SLOW, source_doc=source, context={"sleep": 0})
	assert not behind.next_in_key, "inserted behind the running job"
	# the caller's transaction stays open until the running job ended, freed its key and dispatched
	deadline = time.monotonic() + 30
	while rq_job.get_status(refresh=True) != "finished" and time.monotonic() < deadline:
		time.sleep(0.05)
	frappe.db.commit()

	assert wait_for_status([first, behind.name], timeout=30) == {first: "Finished", behind.name: "Finished"}


def test_sigkilled_worker_is_recovered_and_the_job_retried(workers):
	set_type(SLOW, timeout=3)
	frappe.conf.sync_job_recovery_grace = 1
	try:
		job = enqueue_sync_job(SLOW, source_doc=make_source(), context={"sleep_first_attempt": 60})
		frappe.db.commit()
		(victim,) = workers(1)
		wait_for(lambda: events(job.name, "start"), 30, message="job started")
		kill_whole_worker(victim)
		time.sleep(4.5)  # past timeout + grace
		scheduler.run_maintenance()
		assert frappe.db.get_value("Sync Job", job.name, "retry_count") == 1
		workers(1)
		final = wait_for_status([job.name], timeout=60)
	finally:
		frappe.conf.pop("sync_job_recovery_grace")
	assert final[job.name] == "Finished"
	assert len(events(job.name, "start")) == 2


def test_jobs_queued_before_a_redis_flush_finish_after_the_scheduler_runs(workers, monkeypatch):
	monkeypatch.setattr(states, "PUSH_GRACE_SECONDS", 0)
	names = [enqueue_sync_job(SLOW, source_doc=make_source()).name for _ in range(5)]
	frappe.db.commit()
	assert set(statuses(names).values()) == {"Queued"}
	get_queue("default").connection.flushdb()
	scheduler.run_maintenance()
	workers(1)
	assert set(wait_for_status(names, timeout=60).values()) == {"Finished"}


def test_a_job_delivered_twice_runs_once(workers):
	job = enqueue_sync_job(SLOW, source_doc=make_source(), context={"sleep": 0.5})
	frappe.db.commit()
	job_id = frappe.db.get_value("Sync Job", job.name, "job_id")
	frappe.enqueue(dispatch.RUNNER, queue="default", job_id=job_id + "-again", sync_job_names=[job.name])
	workers(2)
	wait_for_status([job.name], timeout=60)
	time.sleep(1)
	assert len(events(job.name, "start")) == 1


def test_redis_down_at_enqueue_loses_nothing(host, workers, monkeypatch):
	source = make_source()
	monkeypatch.setattr(states, "PUSH_GRACE_SECONDS", 0)
	host.stop_queue_redis()
	try:
		job = enqueue_sync_job(SLOW, source_doc=source)
		frappe.db.commit()  # no exception for the caller
		assert frappe.db.get_value("Sync Job", job.name, "status") in ("Waiting", "Queued")
	finally:
		host.start_queue_redis()
	scheduler.run_maintenance()
	workers(1)
	assert wait_for_status([job.name], timeout=60)[job.name] == "Finished"
