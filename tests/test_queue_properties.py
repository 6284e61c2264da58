"""Property-based exploration of the queue machinery (hypothesis), in-process.

Random short sequences of enqueues (single, bulk, Pending), commits and rollbacks, worker runs,
stale deliveries, crashed runs, user actions, maintenance, dispatch, deletes and lost work, on a few
sources (= concurrency keys). After each step: at most one Queued/Started job per key, and after a
commit no free key has Waiting jobs (the line rule plus the after-commit dispatch). At the end, after
draining: nothing is stuck, each key ran in creation order, no attempt ran twice.

Deterministic reproductions of what the exploration found follow the property test.
"""

import os

import frappe
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_tweaks.engine.status import ACTIONS, S
from sync_tweaks.queue import dispatcher, lines, maintenance, slots, worker
from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import act
from sync_tweaks.utils.sync_job import create_sync_job, enqueue_sync_job, enqueue_sync_jobs
from tests.utils import make_source, reset_state, set_type, statuses

SINGLE = "Test Single Sync"
FAILS = st.sampled_from([None, None, "error", "until_retry"])
SRC = st.integers(0, 1)
STATUS = st.sampled_from(["Waiting", "Queued", "Failed", "Pending", "Canceled", "Finished", None])
PICK = st.integers(0, 7)

OPS = st.one_of(
	st.tuples(st.just("enqueue"), SRC, FAILS),
	st.tuples(st.just("bulk"), st.lists(SRC, min_size=1, max_size=3), FAILS),
	st.tuples(st.just("pending"), SRC, FAILS),
	st.tuples(st.just("commit")),
	st.tuples(st.just("commit")),
	st.tuples(st.just("rollback")),
	st.tuples(st.just("run"), PICK),
	st.tuples(st.just("run"), PICK),
	st.tuples(st.just("stale"), PICK),
	st.tuples(st.just("crash"), PICK),
	st.tuples(st.just("act"), st.sampled_from(["cancel_sync", "retry", "start"]), PICK, STATUS),
	st.tuples(st.just("maintenance")),
	st.tuples(st.just("dispatch")),
	st.tuples(st.just("delete"), PICK, STATUS),
	st.tuples(st.just("lose"), st.sampled_from(["deadline", "slot"]), PICK),
)


def context(fail):
	return {"fail": fail} if fail else {"n": 1}


def all_jobs():
	return frappe.get_all(
		"Sync Job",
		filters={"sync_job_type": SINGLE},
		fields=[
			"name",
			"status",
			"concurrency_key",
			"job_id",
			"next_in_key",
			"due_at",
			"retry_count",
			"creation",
		],
		order_by="creation asc",
	)


def of_status(status):
	return [r for r in all_jobs() if status is None or r.status == status]


def pick(rows, index):
	return rows[index % len(rows)] if rows else None


def after_starts():
	from sync_tweaks_tests.recorder import events

	found = {}
	for e in events(event="after_start"):
		found.setdefault(e["job"], []).append(e["at"])
	return found


def check_one_active_per_key(where):
	active = {}
	for row in all_jobs():
		if row.status in (S.QUEUED.value, S.STARTED.value):
			active.setdefault(row.concurrency_key, []).append((row.name, row.status))
	bad = {key: rows for key, rows in active.items() if len(rows) > 1}
	assert not bad, f"{where}: more than one job Queued/Started per key: {bad}"


def check_no_free_key_waits(where):
	"""Committed state after the after-commit dispatch: a free key's Waiting head was queued."""
	rows = all_jobs()
	waiting = {row.concurrency_key for row in rows if row.status == S.WAITING.value}
	busy = lines.busy_keys(list(waiting)) if waiting else set()
	free = waiting - busy
	assert not free, f"{where}: free keys with Waiting jobs left unqueued: " + str(
		[(r.name, r.status, r.next_in_key, r.due_at) for r in rows if r.concurrency_key in free]
	)


def drain(rounds: int = 40):
	previous = None
	for _ in range(rounds):
		frappe.db.commit()
		maintenance.run_maintenance()
		for row in [r for r in all_jobs() if r.status == S.QUEUED.value]:
			worker.run_batch([row.name], row.job_id)
		frappe.db.rollback()
		snapshot = [(r.name, r.status, r.retry_count) for r in all_jobs()]
		if snapshot == previous:
			return
		previous = snapshot


class Model:
	def __init__(self):
		self.manual: set[str] = set()  # committed manual retries / starts
		self.manual_pending: list[str] = []
		self.manual_retries: dict[str, int] = {}
		self.crashed: set[str] = set()
		self.log: list = []

	def committed(self):
		for name in self.manual_pending:
			self.manual.add(name)
		self.manual_pending.clear()

	def rolled_back(self):
		self.manual_pending.clear()


def step(op, sources, model: Model):
	kind = op[0]
	if kind in ("run", "stale", "crash", "maintenance", "dispatch", "lose"):
		frappe.db.commit()  # another process: sees only committed work
		model.committed()
	if kind == "enqueue":
		enqueue_sync_job(SINGLE, source_doc=sources[op[1]], context=context(op[2]))
	elif kind == "bulk":
		enqueue_sync_jobs(SINGLE, [sources[i].name for i in op[1]], context=context(op[2]))
	elif kind == "pending":
		create_sync_job(SINGLE, source_doc=sources[op[1]], context=context(op[2]), queue_on_insert=False)
	elif kind == "commit":
		frappe.db.commit()
		model.committed()
	elif kind == "rollback":
		frappe.db.rollback()
		model.rolled_back()
	elif kind in ("run", "stale", "crash"):
		row = pick([r for r in all_jobs() if r.status == S.QUEUED.value], op[1])
		if row and kind == "run":
			worker.run_batch([row.name], row.job_id)
		elif row and kind == "stale":
			assert worker.run_batch([row.name], "sync-job-stale") == [None]
		elif row:
			assert worker.claim(row.name, row.job_id)
			frappe.db.sql("update `tabSync Job` set deadline_at=1 where name=%s", row.name)
			frappe.db.commit()
			model.crashed.add(row.name)
	elif kind == "act":
		row = pick(of_status(op[3]), op[2])
		if row and S(row.status) in ACTIONS[op[1]]:
			act(row.name, op[1])
			if op[1] in ("retry", "start"):
				model.manual_pending.append(row.name)
				if op[1] == "retry":
					model.manual_retries[row.name] = model.manual_retries.get(row.name, 0) + 1
	elif kind == "maintenance":
		maintenance.run_maintenance()
	elif kind == "dispatch":
		dispatcher.run_dispatch()
	elif kind == "delete":
		row = pick(of_status(op[2]), op[1])
		# deleting a Failed job whose retry is pending leaves its line headless (see the deterministic
		# test below): known, so the exploration steps around it
		if row and row.status != S.STARTED.value and not (row.status == S.FAILED.value and row.due_at):
			frappe.delete_doc("Sync Job", row.name, ignore_permissions=True)
	elif kind == "lose":
		row = pick([r for r in all_jobs() if r.status == S.QUEUED.value], op[2])
		if row and op[1] == "deadline":
			frappe.db.sql(
				"update `tabSync Job` set deadline_at=1, job_id='sync-job-dead' where name=%s", row.name
			)
			frappe.db.commit()
		elif row:
			frappe.cache().delete(slots._name(row.concurrency_key))
	if kind in ("run", "stale", "crash", "maintenance", "dispatch", "lose", "commit"):
		frappe.db.commit()
		model.committed()
		check_no_free_key_waits(f"after {op}")
	check_one_active_per_key(f"after {op}")


def final_checks(model: Model):
	drain()
	rows = all_jobs()
	stuck = [
		(r.name, r.status, r.due_at)
		for r in rows
		if r.status in (S.WAITING.value, S.QUEUED.value, S.STARTED.value)
		or (r.status == S.FAILED.value and r.due_at)
	]
	assert not stuck, f"stuck after draining: {stuck}"
	runs = after_starts()
	by_key: dict[str, list] = {}
	for r in rows:
		by_key.setdefault(r.concurrency_key, []).append(r)
	for key, jobs in by_key.items():
		ran = [j for j in jobs if j.name in runs and j.name not in model.manual]
		for a, b in zip(ran, ran[1:], strict=False):
			assert max(runs[a.name]) < min(runs[b.name]), (
				f"key {key}: {b.name} (newer) ran before {a.name} finished its attempts: "
				f"{runs[a.name]} vs {runs[b.name]}"
			)
	for r in rows:
		count = len(runs.get(r.name, []))
		allowed = 1 + (r.retry_count or 0) + model.manual_retries.get(r.name, 0)
		assert count <= allowed, f"{r.name} ran {count} times for {allowed} attempts ({r.status})"
		if r.status in (S.FINISHED.value, S.FAILED.value) and r.name not in model.crashed:
			assert count == allowed, f"{r.name} ({r.status}) ran {count} times for {allowed} attempts"


def run_sequence(ops, coalesce: bool):
	reset_state()
	if coalesce:
		set_type(SINGLE, coalesce_duplicates=1)
	sources = [make_source() for _ in range(3)]
	model = Model()
	try:
		for op in ops:
			model.log.append(op)
			step(op, sources, model)
		frappe.db.commit()
		model.committed()
		final_checks(model)
	finally:
		frappe.db.rollback()
		frappe.flags.pop("sync_tweaks_after_commit", None)
		frappe.flags.pop("sync_tweaks_after_commit_running", None)


# PROP_EXAMPLES / PROP_STEPS widen the exploration (1,500 x 25 steps found nothing more)


@settings(
	max_examples=int(os.environ.get("PROP_EXAMPLES", 40)),
	deadline=None,
	suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=1, max_size=int(os.environ.get("PROP_STEPS", 14))), coalesce=st.booleans())
def test_queue_machinery_keeps_its_invariants(ops, coalesce):
	run_sequence(ops, coalesce)


# --- what the exploration found ------------------------------------------------------------------


def test_deleting_a_failed_job_with_a_retry_pending_serves_the_jobs_behind_it():
	"""A Failed job with a retry pending holds its key's line; deleting it frees the line, but
	SyncJob.on_trash asks for nothing (sync_job.py:150-156 covers Queued/Started and a Waiting head
	only). The job behind it waits, unmarked and undispatched, until the minute's maintenance repairs
	the line (on a site without a scheduler: forever)."""
	source = make_source()
	first = enqueue_sync_job(SINGLE, source_doc=source, context={"fail": "error"}).name
	frappe.db.commit()
	behind = enqueue_sync_job(SINGLE, source_doc=source).name
	frappe.db.commit()
	assert worker.run_batch([first], frappe.db.get_value("Sync Job", first, "job_id")) == ["Failed"]
	assert statuses([behind])[behind] == "Waiting", "held behind the pending retry"
	frappe.delete_doc("Sync Job", first, ignore_permissions=True)
	frappe.db.commit()
	assert statuses([behind])[behind] == "Queued", (
		"the job behind the deleted retry was left Waiting with no head marked and no dispatch: "
		f"next_in_key={frappe.db.get_value('Sync Job', behind, 'next_in_key')}"
	)


def test_bulk_enqueue_of_one_source_twice_without_coalescing_makes_two_jobs():
	"""_bulk_insert records every new row in `open_jobs` (utils/sync_job.py:276) even when the type
	does not coalesce (open_jobs starts as {} then, line 237), so a second request for the same
	source in one enqueue_sync_jobs call is merged into the first: one job, and the UPDATE of its
	coalesced_count hits a row that is not inserted yet (the bulk insert comes last)."""
	source = make_source()
	names = enqueue_sync_jobs(SINGLE, [source.name, source.name])
	frappe.db.commit()
	assert len(set(names)) == 2, f"a type without coalescing merged two requests into one job: {names}"


def test_bulk_enqueue_counts_duplicates_merged_within_one_call():
	source = make_source()
	set_type(SINGLE, coalesce_duplicates=1)
	names = enqueue_sync_jobs(SINGLE, [source.name, source.name, source.name])
	frappe.db.commit()
	assert len(set(names)) == 1
	count = frappe.db.get_value("Sync Job", names[0], "coalesced_count")
	assert count == 2, f"two requests merged into the job within the call, coalesced_count={count}"


def test_a_raising_after_commit_callback_of_the_caller_does_not_stop_later_dispatches():
	"""after_commit.run() sets the RUNNING flag, then runs the caller's later after-commit callbacks
	(after_commit.py:46-47) *before* its try/finally: one of them raising (frappe.enqueue(...,
	enqueue_after_commit=True) with the queue Redis down, another app's callback) leaves the flag set,
	and every later commit of the process (the rest of a script, a long CLI run) skips its dispatch:
	new jobs wait for the minute's maintenance."""
	enqueue_sync_job(SINGLE, source_doc=make_source())

	def broken():
		raise RuntimeError("another after-commit callback fails")

	frappe.db.after_commit.add(broken)
	try:
		with pytest.raises(RuntimeError):
			frappe.db.commit()
		frappe.db.rollback()
		later = enqueue_sync_job(SINGLE, source_doc=make_source()).name
		frappe.db.commit()
		stuck = frappe.flags.get("sync_tweaks_after_commit_running")
		assert statuses([later])[later] == "Queued", f"not dispatched at its commit (RUNNING flag={stuck})"
	finally:
		frappe.flags.pop("sync_tweaks_after_commit_running", None)
		frappe.flags.pop("sync_tweaks_after_commit", None)


def test_a_dispatch_that_fails_after_taking_a_slot_does_not_block_its_key(monkeypatch):
	"""dispatch() takes the key's Redis slot in _take (dispatcher.py:170), then may still fail
	before its commit (here a Redis error in idle_workers' worker count, dispatcher.py:69):
	run_dispatch rolls the Queued mark back but not the slot. slots.acquire is SET NX: the job's own
	stale slot refuses it, so the key is blocked for the slot's whole TTL (timeout + grace, 120 s
	here; hours for long timeouts) although nothing runs under it."""
	import redis as redis_lib

	calls = {"n": 0}
	real = dispatcher.idle_workers

	def flaky(queue, **kwargs):
		calls["n"] += 1
		if calls["n"] == 1:
			raise redis_lib.exceptions.ConnectionError("cache Redis blinked")
		return real(queue, **kwargs)

	monkeypatch.setattr(dispatcher, "idle_workers", flaky)
	name = enqueue_sync_job(SINGLE, source_doc=make_source()).name
	frappe.db.commit()  # the after-commit dispatch fails after taking the slot
	assert statuses([name])[name] == "Waiting"
	maintenance.run_maintenance()  # the minute's maintenance dispatches again
	key = frappe.db.get_value("Sync Job", name, "concurrency_key")
	assert statuses([name])[name] == "Queued", (
		f"the job is blocked by its own leaked slot (holder {slots.holder(key)!r}, "
		f"ttl {frappe.cache().ttl(slots._name(key))} s)"
	)


def test_a_bulk_pending_request_does_not_merge_into_a_waiting_job():
	"""find_duplicate merges a Pending request only into a Pending job (utils/sync_job.py:211), but
	the bulk path's _open_duplicates looks for Waiting jobs whatever the request's queue_on_insert
	(line 294): enqueue_sync_jobs(..., queue_on_insert=False) returns the name of a job that is
	already in line to run, and creates no Pending job for the caller to review and start."""
	set_type(SINGLE, coalesce_duplicates=1)
	source = make_source()
	other = make_source()
	blocker = enqueue_sync_job(SINGLE, source_doc=source, context={"n": 0}).name  # holds the key
	frappe.db.commit()
	waiting = enqueue_sync_job(SINGLE, source_doc=source).name
	frappe.db.commit()
	assert statuses([blocker, waiting]) == {blocker: "Queued", waiting: "Waiting"}
	names = enqueue_sync_jobs(SINGLE, [source.name, other.name], queue_on_insert=False)
	frappe.db.commit()
	got = statuses(names)
	assert got[names[0]] == "Pending", f"the Pending request was merged into a Waiting job: {got}"
