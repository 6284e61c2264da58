"""Batched execution: several sync jobs per RQ job, each isolated, timed and reported on its own."""

import json
import signal
import time

import frappe
import pytest
from frappe.utils.background_jobs import get_redis_connection_without_auth
from sync_tweaks_tests.recorder import events

from sync_tweaks.queue import dispatcher as dispatch
from sync_tweaks.queue import maintenance as scheduler
from sync_tweaks.queue import worker as runner
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.conftest import stop_process_group
from tests.utils import (
	kill_whole_worker,
	make_source,
	realtime_statuses,
	set_type,
	statuses,
	wait_for,
	wait_for_status,
)


def queued_batch(*contexts, type_name="Test Single Sync", **params):
	"""Enqueue one job per context on distinct sources, commit, and return their names (one RQ job)."""
	sources = [make_source() for _ in contexts]
	names = [
		enqueue_sync_job(type_name, source_doc=source, context=context, **params).name
		for source, context in zip(sources, contexts, strict=True)
	]
	frappe.db.commit()
	return names


def test_a_batch_isolates_failures_and_dry_runs(site_conf):
	site_conf(sync_job_batch_size=8)
	failing, dry, plain = queued_batch({"fail": "error"}, {"careless_write": True}, {})
	frappe.db.set_value("Sync Job", dry, "dry_run", 1)
	frappe.db.commit()
	job_ids = {frappe.db.get_value("Sync Job", name, "job_id") for name in (failing, dry, plain)}
	assert len(job_ids) == 1, "the three jobs share one RQ job"
	runner.execute_sync_jobs([failing, dry, plain], delivery=job_ids.pop())
	assert statuses([failing, dry, plain]) == {failing: "Failed", dry: "Skipped", plain: "Finished"}
	titles = frappe.get_all("Sync Test Target", pluck="title")
	assert len(titles) == 1 and not any(title.startswith("careless") for title in titles)
	for name in (failing, dry, plain):
		job = frappe.get_doc("Sync Job", name)
		assert job.started_at and job.ended_at and job.time_taken is not None
		assert job.ended_at >= job.started_at


def test_a_job_overrunning_its_timeout_fails_alone(site_conf):
	site_conf(sync_job_batch_size=8)
	slow, quick = queued_batch({"sleep": 5}, {})
	frappe.db.set_value("Sync Job", slow, "timeout", 1)
	frappe.db.commit()
	started = time.monotonic()
	runner.execute_sync_jobs([slow, quick], delivery=frappe.db.get_value("Sync Job", slow, "job_id"))
	assert time.monotonic() - started < 4, "the slow job is stopped at its own timeout"
	assert statuses([slow, quick]) == {slow: "Failed", quick: "Finished"}
	assert frappe.db.get_value("Sync Job", slow, "error_message") == "timed out after 1 s"
	assert frappe.db.get_value("Sync Job", slow, "retry_after"), "a timeout follows the retry policy"


def test_realtime_updates_fire_per_job_in_a_batch(site_conf, workers):
	site_conf(sync_job_batch_size=8)
	with realtime_statuses() as seen:
		names = queued_batch({}, {}, {})
		workers(1)
		wait_for_status(names, timeout=60)
	for name in names:
		assert seen.get(name, set()) >= {"Started", "Finished"}, (name, seen)


def test_a_worker_killed_mid_batch_loses_no_job(site_conf, workers):
	site_conf(sync_job_batch_size=3)
	set_type("Test Slow Sync", timeout=6)
	frappe.conf.sync_job_recovery_grace = 1
	try:
		names = queued_batch({"sleep_first_attempt": 60}, {}, {}, type_name="Test Slow Sync")
		assert len({frappe.db.get_value("Sync Job", n, "job_id") for n in names}) == 1, (
			"one RQ job holds the batch"
		)
		(victim,) = workers(1)
		wait_for(
			lambda: [e for e in events(event="start") if e["job"] in names], 30, message="the batch started"
		)
		kill_whole_worker(victim)
		assert list(statuses(names).values()).count("Started") == 1

		def recovered():
			scheduler.run_maintenance()
			return "Started" not in statuses(names).values()

		wait_for(recovered, timeout=20, interval=1, message="recovery of the killed batch")
		workers(1)
		scheduler.run_maintenance()  # the lost job's retry is due at once (retry_delay 0)
		final = wait_for_status(names, timeout=120, wanted=["Finished"])
	finally:
		frappe.conf.pop("sync_job_recovery_grace", None)
	assert set(final.values()) == {"Finished"}, final
	ended = {e["job"] for e in events(event="end")}
	assert ended >= set(names), "every job of the batch ran to its end"


def test_batches_are_split_across_idle_workers():
	rows = list(range(10))
	assert [len(b) for b in dispatch.split_batches(rows, 8, 1)] == [5, 5]
	assert [len(b) for b in dispatch.split_batches(rows, 8, 4)] == [3, 3, 2, 2]
	assert [len(b) for b in dispatch.split_batches(rows, 1, 2)] == [1] * 10
	assert dispatch.split_batches([], 8, 2) == []
