"""Batches and drains under adversarial timing, found by a second review of drain mode (and of a
claim that rode on the previous job's commit, since reverted). Each test states the promise it checks."""

import time

import frappe
import pytest

from sync_tweaks import apply
from sync_tweaks.queue import after_commit, clock, dispatcher, liveness, maintenance, slots, worker
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.test_queue_races import old_enough_redis
from tests.utils import make_source, set_type, statuses

SINGLE = "Test Single Sync"


class CallbackFailed(Exception):
	pass


def _batch_of_two(site_conf, monkeypatch):
	"""Jobs A and B of two keys in one RQ job, returned with its delivery."""
	site_conf(sync_job_batch_size=4)
	monkeypatch.setattr(dispatcher, "worker_count", lambda queue: 1)
	first, second = make_source(), make_source()
	a = enqueue_sync_job(SINGLE, source_doc=first).name
	b = enqueue_sync_job(SINGLE, source_doc=second).name
	frappe.db.commit()
	delivery = frappe.db.get_value("Sync Job", a, "job_id")
	assert frappe.db.get_value("Sync Job", b, "job_id") == delivery, "A and B share one RQ job"
	return a, b, delivery


def _failing_after_commit_of(name, monkeypatch):
	"""The controller of `name` registers an after-commit callback that raises (another app's hook,
	frappe.enqueue(..., enqueue_after_commit=True) with the queue Redis down ...)."""
	real_run = apply.run

	def run(sync_job):
		if sync_job.name == name:

			def broken():
				raise CallbackFailed("an after-commit callback of the controller fails")

			frappe.db.after_commit.add(broken)
		return real_run(sync_job)

	monkeypatch.setattr(apply, "run", run)


# --- a job claimed in its predecessor's commit is left Started when that commit raises ---------


def test_a_failing_after_commit_callback_of_a_job_does_not_end_its_batch(site_conf, monkeypatch):
	"""Frappe runs after-commit callbacks after the SQL COMMIT: one the controller of A queued that
	raises is logged (A stays Finished) and the batch goes on to B."""
	a, b, delivery = _batch_of_two(site_conf, monkeypatch)
	_failing_after_commit_of(a, monkeypatch)
	worker.run_batch([a, b], delivery)
	frappe.db.rollback()
	assert statuses([a, b]) == {a: "Finished", b: "Finished"}
	assert frappe.get_all("Error Log", filters={"method": ["like", f"%{a}%"]}), (
		"the failing callback is logged"
	)


# --- a raising after-commit callback ahead of sync_tweaks' drops the slot release ------------


def test_a_failing_after_commit_callback_does_not_keep_the_finished_jobs_key_held(site_conf, monkeypatch):
	"""When an after-commit callback raises out of frappe.db.commit(), A's transaction is committed
	(A Finished) but the callbacks queued after the failing one have not run. A controller's callbacks
	are queued before sync_tweaks' `after_commit.run` (registered by mark_done's request, after the
	controller ran), so `run_callers_callbacks` (after_commit.py:81) never sees them: A's slot
	release and its key's dispatch are never run, and the rollback that follows (held()'s (after_commit.py:102-106), since
	43e172f; Frappe's execute_job's before) resets them. A's slot stays taken by a Finished job for
	its whole TTL (timeout + grace; hours for long timeouts): A2, waiting behind A, cannot be
	dispatched, not even by the minute's maintenance. Pre-existing (fails on f98eb54 too)."""
	a, b, delivery = _batch_of_two(site_conf, monkeypatch)
	key = frappe.db.get_value("Sync Job", a, "concurrency_key")
	source = frappe.db.get_value("Sync Job", a, "source_document_name")
	a2 = enqueue_sync_job(SINGLE, source_doc=frappe.get_doc("Sync Test Source", source)).name
	frappe.db.commit()
	assert statuses([a2])[a2] == "Waiting"
	_failing_after_commit_of(a, monkeypatch)
	worker.run_batch([a, b], delivery)
	frappe.db.rollback()
	assert statuses([a])[a] == "Finished"
	assert slots.holder(key) != a, (
		f"A is Finished but still holds its key's slot (ttl {frappe.cache().ttl(slots._name(key))} s); "
		f"A2 is {statuses([a2])[a2]}"
	)
	assert statuses([a2])[a2] == "Queued"


# --- the piggybacked claim starts B's clock before A's after-commit work ----------------------


def test_a_claimed_jobs_deadline_counts_from_when_it_starts_running_not_from_the_previous_commit(
	site_conf, monkeypatch
):
	"""mark_started sets started_at and deadline_at (= now + timeout) when B is claimed, inside A's
	transaction (worker.py:151). B's own time limit starts only after A's commit has run all of A's
	after-commit work: sync_tweaks' dispatch for A's key (now a whole dispatch pass, see R4), the
	realtime flush and whatever the controller registered. Before 44466da B's claim committed right
	before B ran. Whatever A's after-commit work takes is taken off B's recovery margin (maintenance
	fails a Started job at deadline_at + grace even while its lease is alive: worker lost "no result"),
	and B's started_at lies by as much. Here A's after-commit work takes 1.5 s."""
	a, b, delivery = _batch_of_two(site_conf, monkeypatch)
	real_run = apply.run
	seen = {}

	def run(sync_job):
		if sync_job.name == a:
			frappe.db.after_commit.add(lambda: time.sleep(1.5))
		if sync_job.name == b:
			seen["ran_at"] = clock.now()
			seen["deadline_at"] = frappe.db.get_value("Sync Job", b, "deadline_at")
		return real_run(sync_job)

	monkeypatch.setattr(apply, "run", run)
	worker.run_batch([a, b], delivery)
	timeout = frappe.db.get_value("Sync Job", b, "timeout")
	margin = seen["deadline_at"] - seen["ran_at"]
	assert margin >= timeout - 0.5, (
		f"B started running with {margin:.1f} s left of its {timeout} s deadline: its clock started "
		f"at its claim, before A's after-commit work"
	)


# --- under `held`, a key's dispatch runs the whole fill pass at every commit -------------------


def test_a_batch_whose_keys_have_waiting_jobs_runs_the_fill_pass_once_per_group(site_conf, monkeypatch):
	"""after_commit.run under `held` (after_commit.py:58-67) says "a key's next job goes at once ...;
	the fill pass once per group", and held()'s docstring "run the fill pass once, when `flush` is
	called". But it dispatches the keys with run_dispatch -> dispatcher.dispatch(keys), and dispatch
	always runs the fill pass after the keys' heads (dispatcher.py:58-66: _waiting, _room and
	oldest_ready for every known queue, plus a full busy_keys() scan). So when the jobs of a batch
	have successors waiting in their lines (a backlog of edits per source: the usual case for a
	Per Source key), every commit of the batch runs a fill pass, as before `held` existed, and the
	flush runs one more."""
	site_conf(sync_job_batch_size=4)
	monkeypatch.setattr(dispatcher, "worker_count", lambda queue: 1)
	sources = [make_source() for _ in range(3)]
	names = [enqueue_sync_job(SINGLE, source_doc=source).name for source in sources]
	frappe.db.commit()
	behind = [enqueue_sync_job(SINGLE, source_doc=source).name for source in sources]
	frappe.db.commit()
	delivery = frappe.db.get_value("Sync Job", names[0], "job_id")
	assert {frappe.db.get_value("Sync Job", n, "job_id") for n in names} == {delivery}
	assert set(statuses(behind).values()) == {"Waiting"}
	real_oldest_ready = dispatcher.oldest_ready
	fill_passes = []

	def counting(queue, busy, limit, job_type=None, skip_locked=False):
		if job_type is None:
			fill_passes.append(queue)
		return real_oldest_ready(queue, busy, limit, job_type=job_type, skip_locked=skip_locked)

	monkeypatch.setattr(dispatcher, "oldest_ready", counting)
	with after_commit.held():
		worker.run_jobs(names, delivery)
	assert set(statuses(behind).values()) == {"Queued"}, "each key's next job was dispatched"
	assert len(fill_passes) <= 1, f"a group of {len(names)} jobs ran {len(fill_passes)} fill passes"


# --- each drain starts its turns over at the alphabetically first types -----------------------


def test_drains_of_one_group_each_still_give_every_ready_type_its_turn(site_conf):
	"""take_for_drain's turns rotate only within one drain (worker.py:78,87: `types` is built by
	ready_types, sorted by type name, when a drain starts, and rotated after each of its groups).
	A drain lasts sync_job_drain_seconds (10 s by default); with groups of 12 jobs of a second or
	more, a drain is one group. Every drain then takes the first `batch_size` types by *name*: with
	more ready types than a group holds, the types late in the alphabet never get a drain turn,
	whatever their age; only the fill pass (oldest first) ever moves them. Here 4 drains of one
	group of 2, three types: "Test Slow Sync" (the oldest jobs, last by name) gets no turn."""
	site_conf(sync_job_max_queued=1)
	sources = [make_source() for _ in range(24)]
	slow = [enqueue_sync_job("Test Slow Sync", source_doc=source).name for source in sources[:8]]
	frappe.db.commit()
	others = []
	for i in range(8):
		others.append(enqueue_sync_job(SINGLE, source_doc=sources[8 + 2 * i]).name)
		others.append(enqueue_sync_job("Test Bypass Sync", source_doc=sources[9 + 2 * i]).name)
	frappe.db.commit()
	queue = frappe.db.get_value("Sync Job", slow[0], "queue")
	taken = []
	for i in range(4):
		types = dispatcher.ready_types(queue)  # what each new drain starts with (worker.py:78)
		taken += dispatcher.take_for_drain(f"drain-{i}", queue, 2, 3600, types)
		frappe.db.commit()
	assert len(taken) == 8
	assert set(taken) & set(slow), (
		f"4 drains took {len(taken)} jobs, none of the oldest type's ({len(slow)} ready, last by name)"
	)


# --- a discarded failure reports the job "Started" ------------------------------------------


def test_a_run_whose_failure_is_discarded_reports_none_as_run_sync_job_documents(site_conf, monkeypatch):
	"""run_sync_job's docstring (worker.py:131): "returns (its status or None when its result was
	discarded, ...)". A failing run that recovery declared lost meanwhile is discarded by
	record_failure (worker.py:249-251: still_ours is False, it rolls back and returns), but
	run_sync_job then returns `job.status`, the in-memory "Started" of its claim. `bench sync-job run`
	(commands.py:78) prints that status for a job that is in fact Failed by recovery."""
	from tests.test_queue_races import OtherProcess

	a, b, delivery = _batch_of_two(site_conf, monkeypatch)

	def lost_then_fails(sync_job):
		if sync_job.name == a:
			with OtherProcess():
				maintenance.mark_lost(a, delivery, "worker lost (simulated)")
				frappe.db.commit()
			raise RuntimeError("the controller fails after recovery took the job")
		return None

	monkeypatch.setattr(apply, "run", lost_then_fails)
	result = worker.run_jobs([a], delivery)
	assert statuses([a])[a] == "Failed"
	assert result == [None], f"the discarded run reports {result}"


# --- RQ's own timeout, overdue when a job's limit ends, is swallowed by the piggybacked claim ---


def test_rqs_own_timeout_firing_after_a_job_is_not_swallowed_by_the_next_jobs_claim(site_conf, monkeypatch):
	"""time_limit re-arms RQ's alarm when a job's block ends, 1 ms later when RQ's time is already up
	(timeouts.py:55-56). The next thing the worker does is now claim_in_transaction(B)
	(worker.py:151), whose `except Exception` (worker.py:162) catches RQ's JobTimeoutException,
	rolls the claim back and carries on: B is claimed again and run after RQ's limit, with no RQ
	alarm left (RQ's main process SIGKILLs the horse 60 s later, mid-job). Before 44466da the claim
	ran outside any `except Exception` (an RQ timeout there failed the RQ job and maintenance
	re-queued B); the same swallowing happens when it lands in the after-commit dispatch
	(after_commit.py:70), which is not new."""
	from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

	a, b, delivery = _batch_of_two(site_conf, monkeypatch)
	real_run = apply.run
	ran = []

	def run(sync_job):
		ran.append(sync_job.name)
		if sync_job.name == a:
			time.sleep(1.2)  # past RQ's 1 s limit, within A's own 60 s
		return real_run(sync_job)

	monkeypatch.setattr(apply, "run", run)
	fired = []
	real_handler = UnixSignalDeathPenalty.handle_death_penalty

	def handler(self, signum, frame):
		fired.append(time.monotonic())
		real_handler(self, signum, frame)

	monkeypatch.setattr(UnixSignalDeathPenalty, "handle_death_penalty", handler)
	error = None
	with UnixSignalDeathPenalty(1, JobTimeoutException, job_id="review14b"):
		try:
			worker.run_batch([a, b], delivery)
		except JobTimeoutException as e:
			error = e
	frappe.db.rollback()
	assert fired, "RQ's alarm fired"
	assert error is not None, (
		f"RQ's timeout fired during the batch but was swallowed: B ran after it ({statuses([a, b])})"
	)


# --- an undone piggybacked claim still tells Desk the job Started ---------------------------


def test_an_undone_claim_does_not_tell_desk_the_job_started(site_conf, monkeypatch):
	"""claim_in_transaction rolls back to its savepoint when the claim raises (worker.py:162-164),
	which undoes mark_started's UPDATE but not what it queued for after commit: the realtime
	`sync_job_status` "Started" event (states.publish, after_commit=True) stays in Frappe's realtime
	log and is sent with A's commit. Here the claim keeps failing (the retry with commit=True fails
	too and ends the batch): B is Queued in the database, yet Desk was told it Started."""
	from rq.timeouts import JobTimeoutException

	from tests.utils import realtime_statuses

	a, b, delivery = _batch_of_two(site_conf, monkeypatch)
	real_refresh = slots.refresh

	def failing_refresh(key, holder, timeout):
		if holder == b:
			raise JobTimeoutException("RQ's alarm, in the middle of B's claim")
		return real_refresh(key, holder, timeout)

	monkeypatch.setattr(slots, "refresh", failing_refresh)
	with realtime_statuses() as seen:
		with pytest.raises(JobTimeoutException):
			worker.run_batch([a, b], delivery)
		frappe.db.rollback()
	assert statuses([b])[b] == "Queued"
	assert "Started" not in seen.get(b, set()), f"Desk was told {seen.get(b)} for B, which is Queued"
