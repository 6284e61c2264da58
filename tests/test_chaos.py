"""Chaos: work horses and whole workers SIGKILLed every few seconds and one Redis restart, while 2-3
workers drain 100 jobs over 40 sources. Every job must end Finished, each job's write must land
exactly once, and each source's jobs must apply in creation order."""

import contextlib
import os
import random
import signal
import time

import frappe
import pytest

from sync_tweaks.queue import maintenance
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.utils import descendants, kill_whole_worker, make_source, set_type, statuses

SINGLE = "Test Single Sync"
JOBS, SOURCES = 100, 40


@pytest.mark.slow
def test_jobs_survive_killed_horses_killed_workers_and_a_redis_restart(host, site_conf, workers):
	rng = random.Random(20261201)
	site_conf(sync_job_batch_size=4)
	set_type(SINGLE, timeout=20, max_retries=50)
	sources = [make_source() for _ in range(SOURCES)]
	jobs = []  # (source name, seq, job name) in creation order
	for seq in range(JOBS):
		source = rng.choice(sources)
		context = {"append_seq": seq, "sleep": round(rng.uniform(0.5, 1.5), 2)}
		jobs.append((source.name, seq, enqueue_sync_job(SINGLE, source_doc=source, context=context).name))
		if seq % 10 == 9:
			frappe.db.commit()
	frappe.db.commit()
	names = [name for _, _, name in jobs]

	running = workers(3)
	chaos_log = []
	started = time.monotonic()
	next_chaos, restarted = started + rng.uniform(1.5, 3), False
	while time.monotonic() - started < 170:
		now = time.monotonic()
		if now >= next_chaos and now - started < 45:
			chaos_log.append(strike(host, running, rng, restart=not restarted and now - started > 8))
			restarted = restarted or chaos_log[-1] == "redis restart"
			next_chaos = now + rng.uniform(1.5, 3)
		# dead workers are replaced as a supervisor would; the scheduler's minute, compressed
		for process in [p for p in running if p.poll() is not None]:
			running.remove(process)
			running.extend(workers(1))
		try:
			maintenance.run_maintenance()
		except Exception:
			frappe.db.rollback()  # Redis may be restarting
		if set(statuses(names).values()) == {"Finished"}:
			break
		time.sleep(0.5)
	final = statuses(names)
	print(f"chaos: {chaos_log}; all Finished after {time.monotonic() - started:.0f} s")
	assert set(final.values()) == {"Finished"}, stuck_report([n for n, s in final.items() if s != "Finished"])
	assert "redis restart" in chaos_log and len(chaos_log) >= 8, chaos_log
	for source in sources:
		wanted = [f"seq-{seq}" for name, seq, _ in jobs if name == source.name]
		target = frappe.db.get_value("Sync Test Target", {"source": source.name})
		got = (
			frappe.get_all(
				"Sync Test Item", filters={"parent": target}, pluck="item_code", order_by="idx asc"
			)
			if target
			else []
		)
		assert got == wanted, f"{source.name}: each job once and in order (chaos: {chaos_log})"


def stuck_report(names: list[str]) -> list[dict]:
	"""What a failing run needs to explain itself: each unfinished job with its RQ job and lease."""
	from frappe.utils.background_jobs import get_job

	from sync_tweaks.queue import liveness, slots

	report = []
	for row in frappe.get_all(
		"Sync Job",
		filters={"name": ["in", names]},
		fields=[
			"name",
			"status",
			"job_id",
			"concurrency_key",
			"next_in_key",
			"deadline_at",
			"due_at",
			"creation",
		],
		order_by="creation asc",
	):
		rq_job = get_job(row.job_id) if row.job_id else None
		row.rq_status = rq_job.get_status() if rq_job else None
		row.lease = liveness.is_alive(row.job_id) if row.job_id else None
		row.slot = slots.holder(row.concurrency_key)
		report.append(row)
	return report


def strike(host, running, rng, restart: bool) -> str:
	"""One act of chaos: restart Redis, or SIGKILL a work horse (60%) or a whole worker."""
	if restart:
		host.stop_queue_redis()
		time.sleep(1)
		host.start_queue_redis()
		return "redis restart"
	alive = [p for p in running if p.poll() is None]
	if not alive:
		return "none alive"
	victim = rng.choice(alive)
	horses = descendants(victim.pid)
	if horses and rng.random() < 0.6:
		for pid in horses:
			with contextlib.suppress(ProcessLookupError):
				os.kill(pid, signal.SIGKILL)
		return "horse"
	kill_whole_worker(victim)
	return "worker"
