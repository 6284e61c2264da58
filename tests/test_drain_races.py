"""Drain mode and batches under adversarial timing: found by a review of the first drain mode.
Each test states the promise it checks."""

import signal
import time

import frappe
import pytest
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from sync_tweaks import apply
from sync_tweaks.queue import (
	after_commit,
	clock,
	dispatcher,
	lines,
	liveness,
	maintenance,
	slots,
	timeouts,
	worker,
)
from sync_tweaks.utils.sync_job import create_sync_job, enqueue_sync_job
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


# --- a held dispatch strands the next job of a finished key for the rest of the batch ----------


def test_the_next_job_of_a_key_is_dispatched_when_its_predecessor_ends_not_when_the_batch_ends(
	site_conf, monkeypatch
):
	"""SPEC §6: "the oldest waiting job of a key is dispatched when the previous one ends". A batch
	[A (key 1), B (key 2)] with A2 waiting behind A: once A's outcome is committed, A2 must be on its
	way (Queued) to any idle worker while B still runs. `after_commit.held`
	keeps A's key dispatch back until the whole batch (up to batch_size × timeout) is done; A2 is not
	marked next_in_key, so neither the fill pass nor a drain can find it either: only the batch's end
	or the minute's lines.repair frees it."""
	a, b, delivery = _batch_of_two(site_conf, monkeypatch)
	source = frappe.db.get_value("Sync Job", a, "source_document_name")
	a2 = enqueue_sync_job(SINGLE, source_doc=frappe.get_doc("Sync Test Source", source)).name
	frappe.db.commit()  # waits behind A
	assert statuses([a2])[a2] == "Waiting"

	real_run = apply.run
	seen = {}

	def observe_while_b_runs(sync_job):
		if sync_job.name == b:
			seen.update(
				frappe.db.sql(
					"select status, next_in_key from `tabSync Job` where name=%s", a2, as_dict=True
				)[0]
			)
		return real_run(sync_job)

	monkeypatch.setattr(apply, "run", observe_while_b_runs)
	worker.run_batch([a, b], delivery)
	assert seen, "B ran"
	assert seen["status"] == "Queued", (
		f"A ended and was committed, yet A2 (its key's next job) is still {seen['status']} "
		f"(next_in_key={seen['next_in_key']}) while B runs: its dispatch is held until the batch ends"
	)


# --- every job of a drain takes up to a second off RQ's own alarm -----------------------------


def test_a_per_job_time_limit_gives_rq_its_alarm_back_without_losing_a_second_per_job():
	"""timeouts.time_limit stops RQ's alarm (signal.alarm(0), rounded to whole seconds) and re-arms it
	with int(remaining - elapsed): each job, however short, takes a whole second
	off. A batch of 12 lost <= 12 s of a limit that had 60 s grace; a drain runs hundreds of jobs per
	RQ job, so RQ's alarm falls to its 1 s floor long before the RQ job's limit."""
	with UnixSignalDeathPenalty(60, JobTimeoutException, job_id="drain-test"):
		started = time.monotonic()
		for _ in range(30):
			with timeouts.time_limit(5):
				time.sleep(0.01)
		elapsed = time.monotonic() - started
		left = signal.alarm(0)
		signal.alarm(max(left, 1))
	assert elapsed < 3
	assert left >= 60 - elapsed - 2, (
		f"after {elapsed:.1f} s of 30 short jobs RQ's alarm has {left} s left of 60 (a second lost per job)"
	)


def test_a_drain_is_not_cut_off_by_rq_long_before_its_rq_job_limit(site_conf, monkeypatch):
	"""A drain of ~100 quick jobs under RQ's real death penalty, with the limit dispatcher.rq_timeout
	gives the first batch (74 s). Once the drain has run ~73 jobs RQ's alarm is at its 1 s floor
	(the test above), so the first pause of more than a second outside a job's own timer (here: a
	take_for_drain that waits 1.5 s, e.g. a slow dispatch pass or a commit under load, or a claim
	waiting on a row lock) raises RQ's JobTimeoutException out of the drain after a few seconds
	of a 74 s limit: the RQ job fails and its taken jobs are left Queued/Started for maintenance."""
	from types import SimpleNamespace

	import rq

	from sync_tweaks.queue import worker as worker_module

	set_type(SINGLE, timeout=1)
	site_conf(sync_job_batch_size=2, sync_job_max_queued=2, sync_job_drain_seconds=10)
	monkeypatch.setattr(dispatcher, "worker_count", lambda queue: 1)
	sources = [make_source() for _ in range(110)]
	names = [enqueue_sync_job(SINGLE, source_doc=source).name for source in sources]
	frappe.db.commit()
	queued = [n for n, s in statuses(names).items() if s == "Queued"]
	assert len(queued) == 2
	delivery = frappe.db.get_value("Sync Job", queued[0], "job_id")
	limit = int(dispatcher.rq_timeout([1, 1]))
	assert limit == 74
	monkeypatch.setattr(
		rq, "get_current_job", lambda: SimpleNamespace(timeout=limit, worker_name=None, id=delivery)
	)

	real_take = dispatcher.take_for_drain
	ran = {"jobs": 0, "paused": False}
	real_run = worker_module.run_sync_job

	def counting_run(*args, **kwargs):
		ran["jobs"] += 1
		return real_run(*args, **kwargs)

	def take_after_a_pause(*args, **kwargs):
		if ran["jobs"] >= 80 and not ran["paused"]:
			ran["paused"] = True
			time.sleep(1.5)
		return real_take(*args, **kwargs)

	monkeypatch.setattr(worker_module, "run_sync_job", counting_run)
	monkeypatch.setattr(dispatcher, "take_for_drain", take_after_a_pause)
	started = time.monotonic()
	error = None
	with UnixSignalDeathPenalty(limit, JobTimeoutException, job_id="drain-test"):
		try:
			worker_module.run_batch(queued, delivery)
		except JobTimeoutException as e:
			error = e
	elapsed = time.monotonic() - started
	frappe.db.rollback()
	assert ran["paused"], f"the drain ran only {ran['jobs']} jobs"
	left = {n: s for n, s in statuses(names).items() if s in ("Queued", "Started")}
	assert error is None, (
		f"RQ's timeout ended the drain after {elapsed:.1f} s of a {limit} s limit "
		f"({ran['jobs']} jobs run); left for maintenance: {left}"
	)


# --- "types take turns" fails when more types are ready than a group holds --------------------


@pytest.mark.parametrize("limit", [2, 4])
def test_a_drain_gives_every_ready_type_its_turn_even_with_more_types_than_a_group_holds(site_conf, limit):
	"""take_for_drain gives each type ceil(limit / types) rows, then sorts all
	by creation and keeps `limit`: with more ready types than `limit` (batch_size 2 and 3 types here;
	12 and 13 types by default) the share is 1 and the types with the oldest heads win every group,
	so a type queued after another type's backlog waits for that whole backlog: the starvation the
	turn-taking was meant to prevent. The same happens whenever types × share > limit (limit 4, 3
	types: shares of 2, the newest type's 2 rows are the ones cut; by default, 5, 7-11 types)."""
	site_conf(sync_job_max_queued=1)
	sources = [make_source() for _ in range(18)]
	older = []
	for i in range(8):
		older.append(enqueue_sync_job(SINGLE, source_doc=sources[2 * i]).name)
		older.append(enqueue_sync_job("Test Slow Sync", source_doc=sources[2 * i + 1]).name)
	frappe.db.commit()
	newer = [enqueue_sync_job("Test Bypass Sync", source_doc=source).name for source in sources[16:]]
	frappe.db.commit()
	queue = frappe.db.get_value("Sync Job", older[0], "queue")
	groups = []
	types = dispatcher.ready_types(queue)
	for i in range(3):
		groups.append(dispatcher.take_for_drain(f"drain-{i}", queue, limit, 3600, types))
		frappe.db.commit()
		types.append(types.pop(0))
	taken = {name for group in groups for name in group}
	assert all(groups), groups
	assert taken & set(newer), (
		f"3 groups of {limit} took only the two older types; the newer type never got a turn: {groups}"
	)


# --- document hooks: they see the changes made through the document, not the bulk marks -------

SEEN_CHANGES = []


def record_change(doc, method=None):
	SEEN_CHANGES.append(doc.status)


def test_sync_job_document_hooks_see_its_outcome_but_not_the_queued_and_started_marks(monkeypatch):
	"""Notifications, webhooks and doc_events `on_change` of Sync Job see Waiting and every outcome
	(Finished here). Queued and Started are written in one statement per batch (the per-job cost of
	a drain), so they reach Desk through realtime only, as documented in README."""
	hooks = {"Sync Job": {"on_change": [f"{__name__}.record_change"]}}
	monkeypatch.setattr(frappe, "get_doc_hooks", lambda: hooks)
	real_get_attr = frappe.get_attr
	monkeypatch.setattr(
		frappe,
		"get_attr",
		lambda path: record_change if path.endswith(".record_change") else real_get_attr(path),
	)
	SEEN_CHANGES.clear()
	from tests.utils import run_queued

	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	job.start()
	frappe.db.commit()
	run_queued()
	assert statuses([job.name])[job.name] == "Finished"
	assert "Waiting" in SEEN_CHANGES and SEEN_CHANGES[-1] == "Finished", SEEN_CHANGES
	assert "Started" not in SEEN_CHANGES and "Queued" not in SEEN_CHANGES, SEEN_CHANGES


# --- an outcome of a job without a concurrency key no longer asks for a dispatch -------------


def test_jobs_without_a_concurrency_key_keep_rq_filled_as_they_end(site_conf, monkeypatch):
	"""Before f98eb54 `_write` always called after_commit.request (an empty request still meant "run a
	dispatch after commit"); now it asks only when `_followups` has keys or slots,
	and mark_started no longer goes through `_write`. A job of a type with concurrency "None" has
	neither, so its end dispatches nothing: with batches of one (drain off), RQ empties and the backlog
	waits for the minute's maintenance (max_queued jobs per minute)."""

	set_type(SINGLE, concurrency="None")
	site_conf(sync_job_batch_size=1, sync_job_max_queued=2)
	monkeypatch.setattr(dispatcher, "worker_count", lambda queue: 1)
	sources = [make_source() for _ in range(6)]
	names = [enqueue_sync_job(SINGLE, source_doc=source).name for source in sources]
	frappe.db.commit()
	assert not frappe.db.get_value("Sync Job", names[0], "concurrency_key")
	first = [n for n, s in statuses(names).items() if s == "Queued"]
	assert len(first) == 2
	for name in first:
		worker.run_batch([name], frappe.db.get_value("Sync Job", name, "job_id"))
	now = statuses(names)
	assert list(now.values()).count("Queued") == 2, (
		f"two jobs ended and RQ is empty, yet nothing was dispatched: {sorted(now.values())}"
	)


def test_a_backlog_without_concurrency_keys_drains_without_waiting_for_maintenance(worker_conf, workers):
	"""The same with drain mode on and a real worker: drains take Waiting jobs directly, but once the RQ
	jobs RQ held have spent their drain budget nothing pushes new ones (no outcome asks for a
	dispatch, and a drain's flush has no held keys), so the rest of the backlog waits for the minute's
	maintenance. No maintenance runs here: the backlog must still finish."""
	from tests.utils import wait_for_status

	set_type("Test Slow Sync", concurrency="None")
	worker_conf(sync_job_batch_size=2, sync_job_max_queued=2, sync_job_drain_seconds=1)
	names = [
		enqueue_sync_job("Test Slow Sync", source_doc=source, context={"sleep": 0.1}).name
		for source in [make_source() for _ in range(40)]
	]
	frappe.db.commit()
	workers(1)
	try:
		final = wait_for_status(names, wanted=["Finished"], timeout=40)
	except AssertionError:  # wait_for_status raises when the time is up
		final = list(statuses(names).values())
		pytest.fail(
			f"the backlog stalled without maintenance after 40 s: {final.count('Finished')} Finished, "
			f"{final.count('Waiting')} Waiting, {final.count('Queued')} Queued"
		)
	assert set(final.values()) == {"Finished"}, sorted(final.values())


# --- one ready job too long for the drain's room stops every drain -----------------------------


def test_a_job_too_long_for_the_room_left_does_not_stop_a_drain_that_shorter_jobs_fit(site_conf):
	"""fitting takes the *leading* rows that fit and stops at the first that
	does not: when the oldest ready job has a long timeout, take_for_drain returns nothing and the
	drain ends, though the 4 jobs behind it fit many times over.
	Under a backlog of a queue mixing long and short timeouts, drain mode is off whenever a long job
	is the oldest ready one."""
	site_conf(sync_job_max_queued=1)
	sources = [make_source() for _ in range(7)]
	enqueue_sync_job(SINGLE, source_doc=sources[0])  # RQ takes this one
	frappe.db.commit()
	long_one = enqueue_sync_job(SINGLE, source_doc=sources[1], timeout=3000).name
	frappe.db.commit()
	short = [enqueue_sync_job(SINGLE, source_doc=source, timeout=30).name for source in sources[2:]]
	frappe.db.commit()
	assert statuses([long_one, *short]) == {name: "Waiting" for name in [long_one, *short]}
	queue = frappe.db.get_value("Sync Job", long_one, "queue")
	group = dispatcher.take_for_drain("drain-a", queue, 4, 600, dispatcher.ready_types(queue))
	assert group, "600 s left: 4 jobs of 30 s fit, but the 3000 s job ahead of them stopped the take"


# --- an exception escaping a batch is committed by held()'s final flush ------------------------


def test_an_exception_escaping_a_claim_leaves_the_job_queued_and_desk_untold(site_conf, monkeypatch):
	"""RQ's own alarm (or any error) escaping B's claim after its UPDATE: the batch ends, B stays
	Queued (maintenance puts it back in line) and Desk was not told it Started."""
	from sync_tweaks.queue import after_commit
	from tests.utils import realtime_statuses

	a, b, delivery = _batch_of_two(site_conf, monkeypatch)
	real_refresh = after_commit.refresh_slot

	def alarm_during_bs_claim(key, holder, timeout):
		if holder == b:  # the last step of B's Started mark, before the claim commits
			raise JobTimeoutException("Task exceeded maximum timeout value")
		return real_refresh(key, holder, timeout)

	monkeypatch.setattr(after_commit, "refresh_slot", alarm_during_bs_claim)
	with realtime_statuses() as seen:
		with pytest.raises(JobTimeoutException):
			worker.run_batch([a, b], delivery)
		frappe.db.rollback()  # what Frappe's execute_job does with the exception
	assert statuses([a, b]) == {a: "Finished", b: "Queued"}
	assert "Started" not in seen.get(b, set()), f"Desk was told {seen.get(b)} for B, which is Queued"


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
	controller ran), so `run_callers_callbacks` never sees them: A's slot
	release and its key's dispatch are never run, and the rollback that follows (held()'s, since
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


# --- a job's clock starts at its own claim -------------------------------------------------------


def test_a_claimed_jobs_deadline_counts_from_when_it_starts_running_not_from_the_previous_commit(
	site_conf, monkeypatch
):
	"""B's started_at and deadline count from B's own claim, not from A's commit: A's after-commit work
	(here 1.5 s) is not taken off B's recovery margin."""
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
	"""after_commit.run under `held` says "a key's next job goes at once ...;
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
	"""take_for_drain's turns rotate only within one drain (`types` is built by
	ready_types, sorted by type name, when a drain starts).
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
		types = dispatcher.ready_types(queue)  # what each new drain starts with
		taken += dispatcher.take_for_drain(f"drain-{i}", queue, 2, 3600, types)
		frappe.db.commit()
	assert len(taken) == 8
	assert set(taken) & set(slow), (
		f"4 drains took {len(taken)} jobs, none of the oldest type's ({len(slow)} ready, last by name)"
	)


# --- a discarded failure reports the job "Started" ------------------------------------------


def test_a_run_whose_failure_is_discarded_reports_none_as_run_sync_job_documents(site_conf, monkeypatch):
	"""run_sync_job's docstring: "returns (its status or None when its result was
	discarded, ...)". A failing run that recovery declared lost meanwhile is discarded by
	record_failure (still_ours is False), but
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


# --- RQ's own timeout is never swallowed ---------------------------------------------------------


def test_rqs_own_timeout_firing_after_a_job_is_not_swallowed_by_the_next_jobs_claim(site_conf, monkeypatch):
	"""RQ's own alarm, overdue when A's time limit ends, fires right after A: it ends the batch (the
	RQ job's time is up) instead of being caught by the commit or the next claim and running B."""
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
	with UnixSignalDeathPenalty(1, JobTimeoutException, job_id="drain-test"):
		try:
			worker.run_batch([a, b], delivery)
		except JobTimeoutException as e:
			error = e
	frappe.db.rollback()
	assert fired, "RQ's alarm fired"
	assert error is not None, (
		f"RQ's timeout fired during the batch but was swallowed: B ran after it ({statuses([a, b])})"
	)
