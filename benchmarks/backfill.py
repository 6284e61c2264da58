"""Backfill benchmark: a dry-run backfill of `backfill_docs` source documents on 2 workers, created in
this process (as `bench sync-job backfill` does) while the workers run the jobs.

Measured: the time from the start until the roll-up is complete, against the same documents' dry-run
jobs enqueued in chunks by `enqueue_sync_jobs` (what `sync-job enqueue --all --dry-run` does) and
drained by the same workers, in the same run; and the memory of the process creating the jobs.
"""

import contextlib
import io
import time

import frappe

from benchmarks.scenarios import CONFLICT_BENCH, SOURCE, Bench, ensure_bench_type, make_sources, row
from sync_tweaks.backfill import creation, rollup
from sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill import new_backfill
from sync_tweaks.utils.sync_job import enqueue_sync_jobs

OPEN = ("Pending", "Waiting", "Queued", "Started")


def backfill(bench: Bench) -> dict:
	count = bench.sizes["backfill_docs"]
	ensure_bench_type(CONFLICT_BENCH)
	frappe.db.set_value("Sync Job Type", CONFLICT_BENCH, {"concurrency": "None", "max_retries": 0})
	frappe.db.commit()
	tag = f"{bench.tag}-bf"
	sources = make_sources(tag, count)
	cells = {}
	try:
		bench.host.start_workers(2)
		cells["baseline"] = bulk_dry_runs(bench, sources)
		bench.purge(empty_queue=False)
		cells["backfill"] = dry_run_backfill(bench, tag, count)
	finally:
		bench.host.stop_workers()
		bench.purge()
		frappe.db.delete("Sync Backfill", {"sync_job_type": CONFLICT_BENCH})
		frappe.db.delete(SOURCE, {"name": ["like", f"{tag}-%"]})
		frappe.db.commit()
	done, base = cells["backfill"]["seconds_to_rollup"], cells["baseline"]["seconds"]
	memory = cells["backfill"]["creator_rss_after_kib"]
	rows = [
		row(
			f"s, dry-run backfill of {count} documents until the roll-up is complete / bulk-enqueued dry runs drained",
			done,
			base,
			"s",
			done / base,
			"<= 1.2",
			done / base <= 1.2,
		),
		row(
			f"jobs/s, dry-run backfill of {count} documents on 2 workers",
			count / done,
			count / base,
			"jobs/s",
			base / done,
		),
		row(
			f"KiB, memory of the process that created the {count} jobs, after / before",
			memory,
			cells["backfill"]["creator_rss_before_kib"],
			"KiB",
			memory / cells["backfill"]["creator_rss_before_kib"],
			"<= 1.2",
			memory / cells["backfill"]["creator_rss_before_kib"] <= 1.2,
		),
	]
	return {"rows": rows, "details": cells}


def dry_run_backfill(bench: Bench, tag: str, count: int) -> dict:
	before = rss_kib()
	started = time.monotonic()
	backfill = new_backfill(CONFLICT_BENCH, filters={"name": ["like", f"{tag}-%"]}, dry_run=True)
	creation.start(backfill, creator=False)
	frappe.db.commit()
	creation.create_jobs_until_done(backfill.name)
	created = time.monotonic() - started
	after_creation = rss_kib()
	deadline = time.monotonic() + 120 + count / 5
	while True:
		time.sleep(1)
		rollup.fold(backfill.name)
		stored = frappe.get_doc("Sync Backfill", backfill.name)
		if stored.status == "Completed":
			break
		if time.monotonic() > deadline:
			raise RuntimeError(f"backfill not complete: {stored.jobs_open} open\n{bench.host.tail_log()}")
	seconds = time.monotonic() - started
	counts = {field: stored.get(field) for field in ("insert_count", "failed_count", "jobs_created")}
	if counts["jobs_created"] != count or counts["insert_count"] != count:
		raise RuntimeError(f"the roll-up does not add up: {counts}")
	return {
		"documents": count,
		"seconds_to_all_jobs_created": round(created, 2),
		"seconds_to_rollup": round(seconds, 2),
		"creator_rss_before_kib": before,
		"creator_rss_after_kib": after_creation,
		"rollup": counts,
	}


def bulk_dry_runs(bench: Bench, sources: list[str]) -> dict:
	"""The baseline: the same dry-run jobs enqueued a chunk per transaction, drained by the workers."""
	started = time.monotonic()
	with contextlib.redirect_stdout(io.StringIO()):
		for start in range(0, len(sources), creation.CHUNK):
			enqueue_sync_jobs(CONFLICT_BENCH, sources[start : start + creation.CHUNK], dry_run=True)
			frappe.db.commit()
	deadline = time.monotonic() + 120 + len(sources) / 5
	while frappe.db.count("Sync Job", {"sync_job_type": CONFLICT_BENCH, "status": ["in", OPEN]}):
		if time.monotonic() > deadline:
			raise RuntimeError(f"dry runs not drained\n{bench.host.tail_log()}")
		time.sleep(0.5)
		frappe.db.rollback()
	return {"documents": len(sources), "seconds": round(time.monotonic() - started, 2)}


def rss_kib() -> int:
	"""This process's resident memory now."""
	with open("/proc/self/status") as f:
		return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
