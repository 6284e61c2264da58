"""Drain-mode benchmarks: a backlog drained by 1 and 2 workers as a share of the warm limit, the
latency of a lone job against a bare `frappe.enqueue`, and (on request) 100,000 waiting jobs.

The warm limit (the same work warm in one process, a transaction each) is measured in the same run
by `scenarios.warm_limit`; every throughput row shows its share of it.
"""

import contextlib
import io
import os
import statistics
import time

import frappe
from frappe.utils import get_datetime
from frappe.utils.background_jobs import get_queue, get_redis_connection_without_auth

from benchmarks.scenarios import BENCH, QUEUE, TASK, Bench, make_sources, row
from sync_tweaks.queue import dispatcher
from sync_tweaks.utils.sync_job import enqueue_sync_job, enqueue_sync_jobs

OPEN = ("Pending", "Waiting", "Queued", "Started")


def backlog(bench: Bench, limit_per_s: float) -> dict:
	"""`drain_jobs` waiting jobs of distinct sources drained by 1, then 2 workers."""
	count = bench.sizes["drain_jobs"]
	cells = {}
	for workers in (1, 2):
		cells[workers] = run_backlog(bench, count, workers, f"drain{workers}")
		bench.log(f"  backlog of {count}, {workers} worker(s): {cells[workers]['jobs_per_s']:8.1f} jobs/s")
	one, two = cells[1]["jobs_per_s"], cells[2]["jobs_per_s"]
	real_only = None if bench.host.real else "target applies to a real Frappe site"
	rows = [
		row(
			f"jobs/s, 1 worker draining {count} waiting jobs / the warm limit",
			one,
			limit_per_s,
			"jobs/s",
			one / limit_per_s,
			">= 0.4",
			one / limit_per_s >= 0.4,
			real_only,
		),
		row(
			f"jobs/s, 2 workers / 1 worker draining {count} waiting jobs",
			two,
			one,
			"jobs/s",
			two / one,
			">= 1.6",
			two / one >= 1.6,
			real_only,
		),
		row("jobs/s, 2 workers draining / the warm limit", two, limit_per_s, "jobs/s", two / limit_per_s),
	]
	return {"rows": rows, "details": {str(k): v for k, v in cells.items()}}


def run_backlog(bench: Bench, count: int, workers: int, label: str, sample=None) -> dict:
	"""Create `count` jobs with no worker running (they wait), start `workers` and time the drain
	from the first start to the last end. `sample(done)` is called about every second."""
	sources = make_sources(f"{bench.tag}-{label}", count)
	with contextlib.redirect_stdout(io.StringIO()):
		enqueue_sync_jobs(BENCH, sources, context={"title": f"{bench.tag}-{label}"})
	frappe.db.commit()
	bench.host.start_workers(workers)
	peak_queued = peak_rq = 0
	try:
		deadline = time.monotonic() + 120 + count / 5
		while True:
			frappe.db.rollback()
			counts = dict(
				frappe.db.sql(
					"""select status, count(*) from `tabSync Job` where sync_job_type=%s
					group by status""",
					BENCH,
				)
			)
			peak_queued = max(peak_queued, counts.get("Queued", 0))
			peak_rq = max(peak_rq, rq_jobs_waiting())
			if sample:
				sample(counts.get("Finished", 0))
			if not any(counts.get(status) for status in OPEN):
				break
			if time.monotonic() > deadline:
				raise RuntimeError(f"backlog not drained: {counts}\n{bench.host.tail_log()}")
			time.sleep(1)  # the drain is timed from the jobs' own stamps: polling only finds its end
		first, last, finished = frappe.db.sql(
			"""select min(started_at), max(ended_at), sum(status='Finished') from `tabSync Job`
			where sync_job_type=%s""",
			BENCH,
		)[0]
		if int(finished or 0) != count:
			raise RuntimeError(f"{finished} of {count} jobs finished")
		seconds = max((get_datetime(last) - get_datetime(first)).total_seconds(), 1e-6)
	finally:
		bench.host.stop_workers()
		bench.purge()
		frappe.db.delete("Sync Test Source", {"name": ["like", f"{bench.tag}-{label}-%"]})
		frappe.db.commit()
	return {
		"jobs": count,
		"seconds": round(seconds, 3),
		"jobs_per_s": round(count / seconds, 2),
		"ms_per_job": round(seconds / count * 1000, 3),
		"peak_queued": peak_queued,
		"peak_rq_sync_jobs": peak_rq,
	}


def rq_jobs_waiting() -> int:
	"""Sync jobs RQ holds in the benchmark queue (RQ jobs × their batch)."""
	total = 0
	for job in get_queue(QUEUE).get_jobs():
		total += len((job.kwargs.get("kwargs") or {}).get("sync_job_names") or ()) or 1
	return total


def latency(bench: Bench) -> dict:
	"""A lone job on 2 idle workers, commit → done, `latency_jobs` times 1 s apart, interleaved
	with the same work enqueued bare."""
	bench.host.start_workers(2)
	times = {"bare": [], "sync": []}
	watch = NoteWatch()
	try:
		for i in range(bench.sizes["latency_jobs"] + 1):
			for kind in ("bare", "sync"):
				title = f"{bench.tag}-lat-{kind}-{i}"
				source = bench.sources[i % len(bench.sources)]
				if kind == "bare":
					frappe.enqueue(TASK, queue=QUEUE, enqueue_after_commit=True, title=title, source=source)
				else:
					enqueue_sync_job(BENCH, source_document_name=source, context={"title": title})
				started = time.perf_counter()
				frappe.db.commit()
				watch.wait(title, timeout=30)
				if i:  # the first of each warms the workers up
					times[kind].append((time.perf_counter() - started) * 1000)
				time.sleep(0.5)
	finally:
		watch.close()
		bench.host.stop_workers()
		bench.purge()
	p = {kind: percentiles(values) for kind, values in times.items()}
	real_only = None if bench.host.real else "target applies to a real Frappe site"
	rows = [
		row(
			f"ms, lone job commit → done, {name} / bare enqueue",
			p["sync"][name],
			p["bare"][name],
			"ms",
			p["sync"][name] / p["bare"][name],
			"<= 1.2",
			p["sync"][name] / p["bare"][name] <= 1.2,
			real_only,
		)
		for name in ("p50", "p95")
	]
	return {"rows": rows, "details": {kind: {**p[kind], "samples": len(v)} for kind, v in times.items()}}


class NoteWatch:
	"""Waits for a Note without loading the machine the workers share (they run at a lower priority
	than this process): Frappe announces every insert on the realtime channel once it committed, so
	the database is read once per announcement, and every 50 ms in case one was missed."""

	def __init__(self):
		self.pubsub = get_redis_connection_without_auth().pubsub(ignore_subscribe_messages=True)
		self.pubsub.subscribe("events")

	def wait(self, title: str, timeout: float):
		deadline = time.monotonic() + timeout
		while True:
			self.pubsub.get_message(timeout=0.05)
			frappe.db.rollback()
			if frappe.db.sql("select name from `tabNote` where title=%s", title):
				return
			if time.monotonic() > deadline:
				raise RuntimeError(f"{title} not done after {timeout} s")

	def close(self):
		self.pubsub.close()


def percentiles(values: list[float]) -> dict:
	ordered = sorted(values)
	return {
		"p50": round(statistics.median(ordered), 2),
		"p95": round(ordered[max(int(len(ordered) * 0.95) - 1, 0)], 2),
	}


def huge(bench: Bench, limit_per_s: float | None) -> dict:
	"""`huge_jobs` waiting jobs drained by 2 workers: time, jobs/s, the most RQ ever held, and the
	work horses' memory after 1k jobs and at the end."""
	count = bench.sizes["huge_jobs"]
	memory = {}

	def sample(done: int):
		rss = worker_memory_kib(bench)
		if done >= 1000 and "after_1k" not in memory:
			memory["after_1k"] = rss
		if rss:
			memory["last"] = rss

	cell = run_backlog(bench, count, 2, "huge", sample=sample)
	cap = dispatcher.max_queued()
	rows = [
		row(
			f"jobs/s, 2 workers draining {count} waiting jobs",
			cell["jobs_per_s"],
			limit_per_s or 0,
			"jobs/s",
			cell["jobs_per_s"] / limit_per_s if limit_per_s else None,
		),
		row(
			"most sync jobs RQ held at once / sync_job_max_queued",
			cell["peak_rq_sync_jobs"],
			cap,
			"jobs",
			cell["peak_rq_sync_jobs"] / cap,
			"<= 1",
			cell["peak_rq_sync_jobs"] <= cap,
		),
		# Queued also counts the group each drain holds in hand (at most a batch per worker)
		row(
			"most sync jobs Queued at once (RQ and drains in hand) / sync_job_max_queued",
			cell["peak_queued"],
			cap,
			"jobs",
			cell["peak_queued"] / cap,
		),
	]
	if memory.get("after_1k") and memory.get("last"):
		ratio = memory["last"] / memory["after_1k"]
		rows.append(
			row(
				f"KiB, worker memory near {count} jobs / after 1k",
				memory["last"],
				memory["after_1k"],
				"KiB",
				ratio,
				"<= 1.2",
				ratio <= 1.2,
			)
		)
	return {"rows": rows, "details": {**cell, "memory_kib": memory}}


def worker_memory_kib(bench: Bench) -> int:
	"""The largest resident set among the workers and their work horses."""
	largest = 0
	for process in bench.host.workers:
		for pid in [process.pid, *children(process.pid)]:
			with contextlib.suppress(OSError):
				with open(f"/proc/{pid}/status") as f:
					for line in f:
						if line.startswith("VmRSS:"):
							largest = max(largest, int(line.split()[1]))
	return largest


def children(pid: int) -> list[int]:
	found = []
	with contextlib.suppress(OSError):
		for task in os.listdir(f"/proc/{pid}/task"):
			with open(f"/proc/{pid}/task/{task}/children") as f:
				for child in f.read().split():
					found += [int(child), *children(int(child))]
	return found
