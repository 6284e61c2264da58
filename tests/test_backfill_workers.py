"""Backfills on real workers: the creator runs in RQ while jobs already run, the roll-up completes
live, and SIGKILLed creators or two creators at once still give every document exactly one job."""

import random
import secrets
import time
from collections import Counter

import frappe
import pytest
from frappe.utils import get_datetime

from sync_tweaks.backfill import creation
from sync_tweaks.engine import rollup as pure
from sync_tweaks.queue import maintenance
from sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill import act, new_backfill
from tests.backfills import TYPE, stored
from tests.utils import kill_whole_worker, make_source, set_type, wait_for


def make_sources(count: int) -> tuple[str, list[str]]:
	prefix = secrets.token_hex(4)
	names = []
	for i in range(count):
		doc = frappe.get_doc({"doctype": "Sync Test Source", "title": f"{prefix} {i:04d}", "qty": i % 7})
		names.append(doc.insert(ignore_permissions=True).name)
	frappe.db.commit()
	return prefix, names


def start(prefix: str, dry_run: bool = True) -> str:
	backfill = new_backfill(TYPE, filters={"title": ["like", prefix + "%"]}, dry_run=dry_run)
	act(backfill.name, "start")
	frappe.db.commit()
	return backfill.name


def jobs_per_source(name: str) -> Counter:
	frappe.db.rollback()
	return Counter(
		frappe.get_all(
			"Sync Job",
			filters={"sync_backfill": name, "parent_sync_job": ["is", "not set"]},
			pluck="source_document_name",
		)
	)


def assert_rollup_matches_jobs(name: str):
	jobs = frappe.get_all(
		"Sync Job",
		filters={"sync_backfill": name},
		fields=["status", "operation", "dry_run", "conflict_count", "diff_summary"],
	)
	outcomes = Counter(
		pure.outcome_of(j.status, j.operation, j.dry_run, j.conflict_count, j.diff_summary) for j in jobs
	)
	backfill = stored(name)
	counts = {
		o: backfill.get(frappe.scrub(o) + "_count")
		for o in pure.OUTCOMES
		if backfill.get(frappe.scrub(o) + "_count")
	}
	assert counts == dict(outcomes), (counts, outcomes)


def test_jobs_run_while_later_chunks_are_created_and_the_rollup_completes(workers, worker_conf):
	# 150 chunks take the creator over a second: the other worker runs the first chunks' jobs meanwhile
	worker_conf(sync_backfill_chunk_size=2)
	set_type(TYPE, concurrency="None")
	prefix, names = make_sources(300)
	workers(2)
	name = start(prefix)
	wait_for(lambda: stored(name).status == "Completed", 120, message="backfill completed")
	backfill = stored(name)
	assert backfill.jobs_created == 300 and backfill.jobs_open == 0 and backfill.insert_count == 300
	assert set(jobs_per_source(name).values()) == {1} and set(jobs_per_source(name)) == set(names)
	[[first_start]] = frappe.db.sql("select min(started_at) from `tabSync Job` where sync_backfill=%s", name)
	created_all = get_datetime(backfill.creation_ended_at)
	assert get_datetime(first_start) < created_all, "jobs started before the last chunk was created"
	assert_rollup_matches_jobs(name)
	assert not frappe.db.count("Sync Test Target", {"source": ["in", names]}), "a dry run wrote targets"


@pytest.mark.slow
def test_killed_creators_leave_every_document_with_exactly_one_job(host, workers, worker_conf):
	"""A worker is SIGKILLed at a random moment while it creates chunks, up to three times; maintenance
	resumes the backfill after each. Every document gets one job, and every job ends."""
	rng = random.Random(20261202)
	worker_conf(sync_backfill_chunk_size=2)  # 300 chunks: creating them takes a few seconds
	set_type(TYPE, concurrency="None", max_retries=5)
	prefix, names = make_sources(600)
	running = workers(1)
	name = start(prefix, dry_run=False)
	kills = 0
	for _ in range(3):
		time.sleep(rng.uniform(0.1, 0.8))
		backfill = stored(name)
		if backfill.status != "Creating":
			break
		kill_whole_worker(running.pop())
		kills += 1
		selected = stored(name).documents_selected
		# the creator is gone: its heartbeat ages past STALL_SECONDS (compressed here), maintenance
		# resumes (unless the chain's next RQ job still waits in the queue: the new worker takes it)
		frappe.db.set_value("Sync Backfill", name, "heartbeat_at", 1)
		frappe.db.commit()
		running.extend(workers(1))
		creation.resume_stalled()
		assert stored(name).documents_selected >= selected
	assert kills >= 1, f"the backfill was {backfill.status} before the first kill: {backfill.error_message}"

	def settled():
		if stored(name).status == "Creating":  # the scheduler's minutes, compressed: any creator is late
			frappe.db.set_value("Sync Backfill", name, "heartbeat_at", 1)
			frappe.db.commit()
		try:
			maintenance.run_maintenance()  # recovers killed jobs, resumes a stalled creator
		except Exception:
			frappe.db.rollback()
		return stored(name).status == "Completed"

	try:
		wait_for(settled, 180, interval=1, message="backfill completed after the kills")
	except AssertionError:
		backfill = stored(name)
		jobs = Counter(frappe.get_all("Sync Job", filters={"sync_backfill": name}, pluck="status"))
		raise AssertionError(
			f"{backfill.status}: {backfill.documents_selected} selected, {backfill.jobs_open} open, jobs {dict(jobs)}, "
			f"creator {backfill.creator_job} queued={creation.creator_is_queued(backfill)}, {backfill.error_message}"
		) from None
	per_source = jobs_per_source(name)
	assert set(per_source) == set(names), "every document got a job"
	assert set(per_source.values()) == {1}, [n for n, c in per_source.items() if c > 1]
	assert_rollup_matches_jobs(name)
	assert stored(name).insert_count == 600
	print(f"\n{kills} creator(s) killed; 600 documents, one job each")


def test_a_creator_delivered_twice_creates_each_document_once(workers, worker_conf):
	worker_conf(sync_backfill_chunk_size=5)
	set_type(TYPE, concurrency="None")
	prefix, names = make_sources(120)
	name = start(prefix)
	# the chain's RQ job delivered twice: two creators with the chain's token run at once
	token = frappe.db.get_value("Sync Backfill", name, "creator_token")
	creation.enqueue_creator(frappe.get_doc("Sync Backfill", name), token=token)
	frappe.db.commit()
	workers(2)
	wait_for(lambda: stored(name).status == "Completed", 120, message="backfill completed")
	per_source = jobs_per_source(name)
	assert set(per_source) == set(names) and set(per_source.values()) == {1}
	assert_rollup_matches_jobs(name)
