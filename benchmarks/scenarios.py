"""The benchmark scenarios. Each measures sync_tweaks against a baseline measured in the same run.

Every scenario returns `rows` (one per compared pair: measured, baseline, ratio, target, met) and
`details` (raw numbers for the JSON). The fixture type "Bench Note Sync" (Bypass) inserts one Note per
job; the bare baseline enqueues the same work with `frappe.enqueue`: load the source document (as the
runner does for every sync job) and insert the Note.
"""

import contextlib
import io
import os
import statistics
import time

import frappe
from frappe.utils import get_datetime, now_datetime
from frappe.utils.background_jobs import get_queue

from sync_tweaks.queue import after_commit, slots, worker
from sync_tweaks.queue import dispatcher as dispatch
from sync_tweaks.utils.sync_job import enqueue_sync_job, enqueue_sync_jobs

BENCH = "Bench Note Sync"
CONFLICT_BENCH = "Bench Target Sync"  # a standard controller updating Sync Test Targets in place
SOURCE = "Sync Test Source"
TARGET = "Sync Test Target"
QUEUE = "default"
TASK = "sync_tweaks_tests.sync_tweaks_tests.sync_job_type.bench_note_sync.bench_note_sync.insert_note"
OPEN = ("Pending", "Waiting", "Queued", "Started")
DEFAULT_BATCH = dispatch.DEFAULT_BATCH_SIZE
BUSY_KEY = f"type:{BENCH}"  # the key of every job of the type while it runs "Per Type"
DONE_KEY = "bench:done"


def row(case, value, baseline, unit, ratio, target=None, met=None, note=None):
	"""One line of the result table."""
	return {
		"case": case,
		"value": value,
		"baseline": baseline,
		"unit": unit,
		"ratio": ratio,
		"target": target,
		"met": met,
		"note": note,
	}


class Bench:
	"""State shared by the scenarios: the host, the sizes, a run tag and the source documents."""

	def __init__(self, host, sizes: dict, log=print):
		self.host = host
		self.sizes = sizes
		self.log = log
		self.tag = "bench-" + frappe.generate_hash(length=6)
		self.sources: list[str] = []

	# setup and cleanup

	def setup(self):
		ensure_bench_type()
		set_bench_type(concurrency="Per Source")
		self.purge()
		self.sources = make_sources(self.tag, max(2 * self.sizes["jobs"], 2 * self.sizes["warmup"]))

	def teardown(self):
		with contextlib.suppress(Exception):
			frappe.db.rollback()
			self.purge()
			frappe.db.delete(SOURCE, {"name": ["like", f"{self.tag}-%"]})
			set_bench_type(concurrency="Per Source")
			frappe.db.commit()

	def purge(self, empty_queue: bool = True):
		"""Delete the benchmark's jobs and Notes, free their slots; empty the queue when no worker runs."""
		frappe.db.rollback()
		for job in frappe.get_all(
			"Sync Job",
			filters={"sync_job_type": BENCH, "status": ["in", ["Queued", "Started"]]},
			fields=["name", "concurrency_key"],
		):
			if job.concurrency_key:
				slots.release(job.concurrency_key, job.name)
		frappe.db.delete("Sync Job", {"sync_job_type": ["in", (BENCH, CONFLICT_BENCH)]})
		frappe.db.delete("Sync Link", {"sync_job_type": ["in", (BENCH, CONFLICT_BENCH)]})
		frappe.db.delete("Note", {"title": ["like", f"{self.tag}-%"]})
		frappe.db.delete(TARGET, {"source": ["like", f"{self.tag}-%"]})
		frappe.db.commit()
		if empty_queue:
			get_queue(QUEUE).empty()

	# one measured batch of jobs on running workers

	def run_jobs(self, kind: str, count: int, label: str) -> float:
		"""Run `count` jobs ("bare" or "sync") on the running workers; seconds from the commit that
		releases them all at once (RQ pushes, or dispatch + pushes) to the last Note."""
		prefix = f"{self.tag}-{label}-"
		frappe.db.commit()
		for i in range(count):
			if kind == "bare":
				frappe.enqueue(
					TASK, queue=QUEUE, enqueue_after_commit=True, title=f"{prefix}{i}", source=self.sources[i]
				)
			else:
				enqueue_sync_job(
					BENCH, source_document_name=self.sources[i], context={"title": f"{prefix}{i}"}
				)
		started = now_datetime()
		frappe.db.commit()
		last = self.wait_for_notes(prefix, count, timeout=60 + count * 3)
		if kind == "sync":
			self.wait_for_sync_jobs(timeout=60)
		self.purge(empty_queue=False)
		return max((get_datetime(last) - started).total_seconds(), 1e-6)

	def wait_for_notes(self, prefix: str, count: int, timeout: float):
		deadline = time.monotonic() + timeout
		while True:
			frappe.db.rollback()
			done, last = frappe.db.sql(
				"select count(*), max(creation) from `tabNote` where title like %s", (prefix + "%",)
			)[0]
			if done >= count:
				return last
			if time.monotonic() > deadline:
				raise RuntimeError(
					f"{done}/{count} jobs done after {timeout:.0f} s; jobs: {self.job_statuses()}\n"
					+ self.host.tail_log()
				)
			time.sleep(0.05)

	def wait_for_sync_jobs(self, timeout: float):
		deadline = time.monotonic() + timeout
		while frappe.db.count("Sync Job", {"sync_job_type": BENCH, "status": ["in", OPEN]}):
			if time.monotonic() > deadline:
				raise RuntimeError(f"sync jobs still open: {self.job_statuses()}")
			time.sleep(0.05)
			frappe.db.rollback()
		failed = frappe.get_all(
			"Sync Job",
			filters={"sync_job_type": BENCH, "status": ["!=", "Finished"]},
			fields=["name", "status", "error_message"],
			limit=1,
		)
		if failed:
			raise RuntimeError(f"a benchmark job did not finish: {failed[0]}")

	def job_statuses(self) -> dict:
		statuses = frappe.get_all("Sync Job", filters={"sync_job_type": BENCH}, pluck="status")
		return {status: statuses.count(status) for status in set(statuses)}


# fixture type and sources


def ensure_bench_type(name: str = BENCH):
	"""Import a benchmark type from the fixture app if the site does not have it yet."""
	if frappe.db.exists("Sync Job Type", name):
		return
	import sync_tweaks_tests
	from frappe.modules.import_file import import_file_by_path

	folder = frappe.scrub(name)
	path = os.path.join(
		os.path.dirname(sync_tweaks_tests.__file__),
		"sync_tweaks_tests",
		"sync_job_type",
		folder,
		f"{folder}.json",
	)
	import_file_by_path(path, force=True)
	frappe.db.commit()


def set_bench_type(**fields):
	defaults = {
		"disabled": 0,
		"coalesce_duplicates": 0,
		"queue": QUEUE,
		"timeout": 60,
		"max_retries": 0,
		"verbose_logging": 0,
	}
	frappe.db.set_value("Sync Job Type", BENCH, {**defaults, **fields})
	frappe.db.commit()
	frappe.clear_document_cache("Sync Job Type", BENCH)


def make_sources(tag: str, count: int) -> list[str]:
	"""`count` committed Sync Test Sources (one multi-row insert)."""
	names = [f"{tag}-src-{i:06d}" for i in range(count)]
	now = now_datetime()
	columns = ["name", "title", "creation", "modified", "owner", "modified_by", "docstatus", "idx"]
	frappe.db.bulk_insert(
		SOURCE, columns, [[name, name, now, now, "Administrator", "Administrator", 0, 0] for name in names]
	)
	frappe.db.commit()
	return names


# scenarios


def worker_matrix(bench: Bench) -> dict:
	"""Bare enqueue vs sync jobs (batch 1 Per Source, batch 1 Global, default batch) on 1 and 2 workers.

	Feeds the overhead, parallel and batched scenarios (same jobs, same workers, same run). Each cell
	runs `reps` times, interleaved with the others; the fastest repetition counts (other load on the
	machine only ever slows a run down).
	"""
	total = bench.sizes["jobs"]
	warmup = bench.sizes["warmup"]
	plan = [
		("bare", "bare", 1, "Per Source"),
		("sync_b1", "sync", 1, "Per Source"),
		("sync_b1_global", "sync", 1, "Global"),
		(f"sync_b{DEFAULT_BATCH}", "sync", DEFAULT_BATCH, "Per Source"),
	]
	cells = {}
	for workers in (1, 2):
		bench.host.start_workers(workers)
		try:
			bench.host.set_config("sync_job_batch_size", 1)
			bench.run_jobs("bare", warmup * workers, f"warm{workers}b")
			bench.run_jobs("sync", warmup * workers, f"warm{workers}s")
			for rep in range(bench.sizes["reps"]):
				for name, kind, batch, concurrency in plan:
					bench.host.set_config("sync_job_batch_size", batch)
					set_bench_type(concurrency=concurrency)
					# serialised jobs are only a contrast (half as many); batches run faster (twice as many)
					count = total // 2 if concurrency == "Global" else total * 2 if batch > 1 else total
					seconds = bench.run_jobs(kind, count, f"{name}-w{workers}-r{rep}")
					cell = cells.setdefault(f"{name}_w{workers}", {"jobs": count, "runs_s": []})
					cell["runs_s"].append(round(seconds, 4))
					bench.log(f"  {name:<16} {workers} worker(s): {count / seconds:8.1f} jobs/s")
			set_bench_type(concurrency="Per Source")
		finally:
			bench.host.stop_workers()
			bench.host.restore_config()
	for cell in cells.values():
		best = min(cell["runs_s"])
		cell.update(jobs_per_s=round(cell["jobs"] / best, 3), ms_per_job=round(best / cell["jobs"] * 1000, 3))
	return cells


def overhead(bench: Bench, cells: dict) -> dict:
	sync, bare = cells["sync_b1_w1"]["ms_per_job"], cells["bare_w1"]["ms_per_job"]
	ratio = sync / bare
	return {
		"rows": [
			row(
				"per-job time, 1 worker, batch 1 (sync / bare enqueue)",
				sync,
				bare,
				"ms/job",
				ratio,
				"<= 1.5",
				ratio <= 1.5,
			)
		],
		"details": {key: cells[key] for key in ("sync_b1_w1", "bare_w1")},
	}


def parallel(bench: Bench, cells: dict) -> dict:
	rows = []
	for label, key, target in (
		("Per Source", "sync_b1", ">= 1.6"),
		("Global (serialised, contrast)", "sync_b1_global", None),
	):
		one, two = cells[f"{key}_w1"]["jobs_per_s"], cells[f"{key}_w2"]["jobs_per_s"]
		ratio = two / one
		rows.append(
			row(
				f"jobs/s, 2 workers / 1 worker, batch 1, {label}",
				two,
				one,
				"jobs/s",
				ratio,
				target,
				ratio >= 1.6 if target else None,
			)
		)
	return {"rows": rows, "details": {k: v for k, v in cells.items() if k.startswith("sync_b1")}}


def batched(bench: Bench, cells: dict) -> dict:
	batch = f"sync_b{DEFAULT_BATCH}"
	real_only = None if bench.host.real else "target applies to a real Frappe site"
	b1, b8, bare = (cells[f"{k}_w1"]["jobs_per_s"] for k in ("sync_b1", batch, "bare"))
	b8_two, bare_two = cells[f"{batch}_w2"]["jobs_per_s"], cells["bare_w2"]["jobs_per_s"]
	rows = [
		row(
			f"jobs/s, batch {DEFAULT_BATCH} / bare enqueue, 1 worker",
			b8,
			bare,
			"jobs/s",
			b8 / bare,
			">= 5",
			b8 / bare >= 5,
			real_only,
		),
		row(
			f"jobs/s, batch {DEFAULT_BATCH}, 2 workers / 1 worker",
			b8_two,
			b8,
			"jobs/s",
			b8_two / b8,
			">= 1.6",
			b8_two / b8 >= 1.6,
		),
		row(
			f"jobs/s, batch {DEFAULT_BATCH} / bare enqueue, 2 workers",
			b8_two,
			bare_two,
			"jobs/s",
			b8_two / bare_two,
		),
		row("jobs/s, batch 1 / bare enqueue, 1 worker", b1, bare, "jobs/s", b1 / bare),
		row("jobs/s, bare enqueue, 2 workers / 1 worker", bare_two, bare, "jobs/s", bare_two / bare),
	]
	return {"rows": rows, "details": cells}


def warm_limit(bench: Bench, cells: dict | None = None) -> dict:
	"""The limit of this work on this machine: the bare task run warm in one process, a transaction
	each; next to it, as many sync jobs run warm in this process (the framework's bookkeeping without
	RQ's per-job fork), and the default batch on one worker as a share of the limit."""
	count = bench.sizes["limit_jobs"]
	titles = [f"{bench.tag}-limit-{i:06d}" for i in range(count)]
	sources = make_sources(f"{bench.tag}-warm", count)
	started = time.perf_counter()
	for title, source in zip(titles, sources, strict=True):
		frappe.get_attr(TASK)(title, source)  # the same work: load the source, insert the Note
		frappe.db.commit()
	limit = count / (time.perf_counter() - started)

	bench.host.set_config("sync_job_max_queued", count + 10)
	bench.host.set_config("sync_job_batch_size", count)
	try:
		with contextlib.redirect_stdout(io.StringIO()):
			names = enqueue_sync_jobs(BENCH, sources, context={"title": f"{bench.tag}-warm"})
		frappe.db.commit()  # dispatched to RQ, where no worker listens: this process runs them
		batches: dict[str, list[str]] = {}
		for name, job_id in frappe.get_all(
			"Sync Job", filters={"name": ["in", names]}, fields=["name", "job_id"], as_list=True
		):
			batches.setdefault(job_id, []).append(name)
		started = time.perf_counter()
		for job_id, batch in batches.items():
			worker.run_batch(batch, job_id)
		warm = count / (time.perf_counter() - started)
	finally:
		bench.host.restore_config()
		bench.purge()
	rows = [
		row(
			"jobs/s, sync jobs warm in one process / the bare task warm (share of the limit)",
			warm,
			limit,
			"jobs/s",
			warm / limit,
		)
	]
	batched = (cells or {}).get(f"sync_b{DEFAULT_BATCH}_w1")
	if batched:
		rows.append(
			row(
				f"jobs/s, batch {DEFAULT_BATCH} on 1 worker / the bare task warm (share of the limit)",
				batched["jobs_per_s"],
				limit,
				"jobs/s",
				batched["jobs_per_s"] / limit,
			)
		)
	return {
		"rows": rows,
		"details": {"jobs": count, "limit_ms_per_job": 1000 / limit, "warm_ms_per_job": 1000 / warm},
	}


def conflict_cost(bench: Bench) -> dict:
	"""Cost per Update job of conflict detection (read the pair's Sync Link under lock, compare, write
	the synced state), two ways: warm Update jobs in this process on two source sets in alternating
	rounds (ABBA), one with detection and one with it patched out (the baseline), best round of each;
	and the time the jobs with detection spend inside it, timed in the jobs, against their whole time
	(robust on a shared machine, where the first comparison is within the noise)."""
	ensure_bench_type(CONFLICT_BENCH)
	count = bench.sizes["conflict_jobs"]
	sets = {mode: make_sources(f"{bench.tag}-conflict-{mode}", count) for mode in ("detection", "baseline")}
	bench.host.set_config("sync_job_max_queued", count + 10)
	bench.host.set_config("sync_job_batch_size", count)
	per_job = {"detection": [], "baseline": []}
	inside: list[float] = []
	try:
		for mode, sources in sets.items():  # Insert the targets (and, with detection, their links)
			with _detection(mode, []):
				_run_warm(sources)
		for round_ in range(max(4, 2 * bench.sizes["reps"])):
			for mode in ("detection", "baseline") if round_ % 2 == 0 else ("baseline", "detection"):
				frappe.db.sql(
					f"update `tab{SOURCE}` set qty=qty+1 where name in %(names)s", {"names": sets[mode]}
				)
				frappe.db.commit()
				spent: list[float] = []
				with _detection(mode, spent):
					per_job[mode].append(_run_warm(sets[mode]) / count)
				if mode == "detection":
					inside.append(sum(spent) / count)
		conflicts = frappe.db.count("Sync Job", {"sync_job_type": CONFLICT_BENCH, "conflict_count": [">", 0]})
	finally:
		bench.host.restore_config()
		bench.purge()
		frappe.db.delete(SOURCE, {"name": ["like", f"{bench.tag}-conflict-%"]})
		frappe.db.commit()
	detection, baseline = (min(per_job[mode]) * 1000 for mode in ("detection", "baseline"))
	best = min(range(len(inside)), key=lambda i: per_job["detection"][i])
	inside_ms, whole_ms = inside[best] * 1000, per_job["detection"][best] * 1000
	return {
		"rows": [
			row(
				"ms/job, warm Update jobs with conflict detection / with it patched out",
				detection,
				baseline,
				"ms",
				detection / baseline,
				target="≤ 1.25×",
				met=detection / baseline <= 1.25,
			),
			row(
				"ms/job spent in conflict detection (timed inside the jobs) / the whole job",
				inside_ms,
				whole_ms,
				"ms",
				inside_ms / whole_ms,
				target="≤ 0.2×",
				met=inside_ms / whole_ms <= 0.2,
			),
		],
		"details": {
			"jobs": count,
			"detection_ms_per_job": [x * 1000 for x in per_job["detection"]],
			"baseline_ms_per_job": [x * 1000 for x in per_job["baseline"]],
			"inside_detection_ms_per_job": [x * 1000 for x in inside],
			"cost_ms_per_job_end_to_end": detection - baseline,
			"jobs_with_conflicts": conflicts,
		},
	}


@contextlib.contextmanager
def _detection(mode: str, spent: list[float]):
	"""With detection, timing its two steps into `spent` (the check before the write: Sync Link read
	under lock, flatten, compare; the write of the synced state); or ("baseline") without both."""
	from sync_tweaks import apply
	from sync_tweaks.sync_tweaks.doctype.sync_link import sync_link

	saved = apply.SyncRun.check_conflicts, sync_link.record_write
	if mode == "baseline":
		apply.SyncRun.check_conflicts = lambda self, target_doc, outcome: (None, None)
		sync_link.record_write = lambda job, synced, kept=None: None
	else:
		apply.SyncRun.check_conflicts = _timed(saved[0], spent)
		sync_link.record_write = _timed(saved[1], spent)
	try:
		yield
	finally:
		apply.SyncRun.check_conflicts, sync_link.record_write = saved


def _timed(function, spent: list[float]):
	def timed(*args, **kwargs):
		started = time.perf_counter()
		try:
			return function(*args, **kwargs)
		finally:
			spent.append(time.perf_counter() - started)

	return timed


def _run_warm(sources: list[str]) -> float:
	"""Enqueue one job per source and run them all in this process; seconds spent running them."""
	with contextlib.redirect_stdout(io.StringIO()):
		names = enqueue_sync_jobs(CONFLICT_BENCH, sources)
	frappe.db.commit()  # dispatched to RQ, where no worker listens: this process runs them
	batches: dict[str, list[str]] = {}
	for name, job_id in frappe.get_all(
		"Sync Job", filters={"name": ["in", names]}, fields=["name", "job_id"], as_list=True
	):
		batches.setdefault(job_id, []).append(name)
	started = time.perf_counter()
	for job_id, batch in batches.items():
		worker.run_batch(batch, job_id)
	elapsed = time.perf_counter() - started
	failed = frappe.db.count("Sync Job", {"name": ["in", names], "status": ["!=", "Finished"]})
	if failed:
		raise RuntimeError(f"{failed} conflict-cost jobs did not finish")
	get_queue(QUEUE).empty()
	return elapsed


def enqueue_cost(bench: Bench) -> dict:
	"""1,000 enqueue_sync_job calls in one transaction vs 1,000 x (insert a Note + frappe.enqueue after commit)."""
	calls = bench.sizes["enqueue_calls"]
	timings = {"sync": [], "plain": []}
	for round_ in range(bench.sizes["rounds"]):
		prefix = f"{bench.tag}-enq{round_}-"
		frappe.db.commit()
		started = time.perf_counter()
		for i in range(calls):
			frappe.get_doc({"doctype": "Note", "title": f"{prefix}{i}"}).insert(ignore_permissions=True)
			frappe.enqueue(TASK, queue=QUEUE, enqueue_after_commit=True, title=f"{prefix}{i}")
		frappe.db.commit()
		timings["plain"].append(time.perf_counter() - started)
		bench.purge()

		started = time.perf_counter()
		for i in range(calls):
			enqueue_sync_job(BENCH, source_document_name=f"{prefix}{i}")
		frappe.db.commit()
		timings["sync"].append(time.perf_counter() - started)
		bench.purge()
	sync, plain = (min(timings[k]) / calls * 1000 for k in ("sync", "plain"))
	return {
		"rows": [
			row(
				f"caller time per call, {calls} calls in one transaction + commit (enqueue_sync_job / insert + frappe.enqueue)",
				sync,
				plain,
				"ms/call",
				sync / plain,
				"<= 2",
				sync / plain <= 2,
			)
		],
		"details": {"calls": calls, "seconds": timings},
	}


def bulk(bench: Bench) -> dict:
	"""enqueue_sync_jobs for N sources vs N enqueue_sync_job calls, each in one transaction (commit included)."""
	count = bench.sizes["bulk_sources"]
	names = [f"{bench.tag}-bulk-{i:06d}" for i in range(count)]
	frappe.db.commit()
	started = time.perf_counter()
	with contextlib.redirect_stdout(io.StringIO()):
		enqueue_sync_jobs(BENCH, names)
	frappe.db.commit()
	bulk_seconds = time.perf_counter() - started
	bench.purge()
	started = time.perf_counter()
	for name in names:
		enqueue_sync_job(BENCH, source_document_name=name)
	frappe.db.commit()
	single_seconds = time.perf_counter() - started
	bench.purge()
	speedup = single_seconds / bulk_seconds
	return {
		"rows": [
			row(
				f"{count} sources: single calls / enqueue_sync_jobs (speed-up)",
				bulk_seconds,
				single_seconds,
				"s",
				speedup,
				">= 5",
				speedup >= 5,
			)
		],
		"details": {"sources": count, "bulk_s": bulk_seconds, "single_s": single_seconds},
	}


def dispatch_backlog(bench: Bench) -> dict:
	"""Time to dispatch the next job with B other Waiting jobs, for two backlog shapes.

	- distinct keys: a bulk enqueue waiting behind `sync_job_max_queued`; the next job is the oldest
	  and a job of another key just ended (the queue has room for one).
	- busy key: B jobs waiting behind one key whose job runs; the next job's own key just freed up.
	"""
	sizes = sorted(bench.sizes["backlogs"])
	rounds = bench.sizes["dispatch_rounds"]
	results = {}
	try:
		for shape, prefix in (("distinct keys", "d"), ("busy key", "k")):
			bench.purge()
			wait_for_purge()
			results[shape] = {}
			probe = _waiting_jobs([f"{bench.tag}-{prefix}-next"])[0]
			frappe.db.sql("update `tabSync Job` set creation=%s where name=%s", ("2000-01-01", probe))
			probe_key = frappe.db.get_value("Sync Job", probe, "concurrency_key")
			if shape == "busy key":
				holder = _waiting_jobs([f"{bench.tag}-{prefix}-holder"])[0]
				frappe.db.sql(
					"update `tabSync Job` set status='Started', concurrency_key=%s where name=%s",
					(BUSY_KEY, holder),
				)
			frappe.db.commit()
			# the backlog is enqueued as users would: behind the running job of one key, or one key each
			set_bench_type(concurrency="Per Type" if shape == "busy key" else "Per Source")
			backlog: list[str] = []
			for size in sizes:
				added = _waiting_jobs([f"{bench.tag}-{prefix}{i:06d}" for i in range(len(backlog), size)])
				if shape != "busy key":
					queued = frappe.db.count("Sync Job", {"status": "Queued", "queue": QUEUE})
					frappe.local.conf["sync_job_max_queued"] = queued + 1
				backlog += added
				freed = probe_key if shape == "busy key" else DONE_KEY
				# right after the bulk change the planner may still use stale statistics ...
				cold = _time_dispatch(probe, freed, 0)["median_ms"]
				# ... the steady state of a long-lived backlog comes once they are refreshed
				refresh_statistics()
				results[shape][size] = {**_time_dispatch(probe, freed, rounds), "first_after_bulk_ms": cold}
				bench.log(
					f"  dispatch, {size:>6} waiting, {shape:<13}: {results[shape][size]['median_ms']:.2f} ms"
				)
			frappe.local.conf.pop("sync_job_max_queued", None)
	finally:
		frappe.local.conf.pop("sync_job_max_queued", None)
		set_bench_type(concurrency="Per Source")
		bench.purge()
	rows = []
	for shape, by_size in results.items():
		base = by_size[sizes[0]]["median_ms"]
		for size in sizes[1:]:
			value = by_size[size]["median_ms"]
			last = size == sizes[-1]
			rows.append(
				row(
					f"dispatch next job, {size} waiting ({shape}) / {sizes[0]} waiting",
					value,
					base,
					"ms",
					value / base,
					"<= 1.5" if last else None,
					value / base <= 1.5 if last else None,
				)
			)
		first = by_size[sizes[-1]]["first_after_bulk_ms"]
		rows.append(
			row(
				f"first dispatch right after the bulk insert, {sizes[-1]} waiting ({shape}) / {sizes[0]} waiting",
				first,
				base,
				"ms",
				first / base,
			)
		)
	return {"rows": rows, "details": {"rounds": rounds, "results": results}}


def refresh_statistics():
	"""Refresh the planner's statistics of Sync Job, as MariaDB does in the background seconds after a
	bulk change (the stand-in's SQLite never does: it keeps planning without statistics)."""
	if frappe.db.db_type == "sqlite":
		return
	frappe.db.commit()
	frappe.db.sql("analyze table `tabSync Job`")
	frappe.db.commit()


def wait_for_purge(timeout: float = 60) -> float:
	"""After a mass delete, wait until MariaDB purged the deleted rows (until then every scan of the
	Waiting range steps over them); returns the seconds waited."""
	started = time.monotonic()
	while frappe.db.db_type != "sqlite" and time.monotonic() - started < timeout:
		probe = time.perf_counter()
		frappe.db.sql("select name from `tabSync Job` where status='Waiting' limit 1")
		frappe.db.rollback()  # an open read view would hold the purge back
		if time.perf_counter() - probe < 0.002:
			break
		time.sleep(0.5)
	return time.monotonic() - started


def _waiting_jobs(sources: list[str]) -> list[str]:
	"""Enqueue Waiting jobs in bulk (as `enqueue_sync_jobs` does) without dispatching them."""
	names = []
	for start in range(0, len(sources), 5000):
		# no dispatch after these commits: it would queue the probe and the backlog
		frappe.flags[after_commit.RUNNING] = []  # as inside the after-commit loop: requests are held for it
		try:
			with contextlib.redirect_stdout(io.StringIO()):
				names += enqueue_sync_jobs(BENCH, sources[start : start + 5000], queue_on_insert=True)
			frappe.db.commit()
		finally:
			frappe.flags.pop(after_commit.RUNNING, None)
			after_commit.forget()
	return names


def _time_dispatch(probe: str, freed_key: str, rounds: int) -> dict:
	"""Median time of `run_dispatch(keys=[freed_key])` (commit and RQ push included), which must queue `probe`."""
	timings = []
	for _ in range(rounds + 1):
		frappe.db.commit()
		started = time.perf_counter()
		names = dispatch.run_dispatch(keys=[freed_key])
		timings.append(time.perf_counter() - started)
		if names != [probe]:
			raise RuntimeError(f"dispatch queued {names[:5]} instead of {probe}")
		key = frappe.db.get_value("Sync Job", probe, "concurrency_key")
		frappe.db.sql("update `tabSync Job` set status='Waiting', job_id=null where name=%s", probe)
		frappe.db.commit()
		slots.release(key, probe)
		get_queue(QUEUE).empty()
	timings = timings[1:] or timings  # the first round warms caches
	return {
		"median_ms": statistics.median(timings) * 1000,
		"min_ms": min(timings) * 1000,
		"max_ms": max(timings) * 1000,
	}
