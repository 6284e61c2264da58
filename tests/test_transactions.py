"""Contract tests of the transaction seams (sync_tweaks/queue/transactions.py): they rely only on
Frappe's public callback managers and realtime log, and must behave the same on a real site."""

import contextlib

import frappe
import pytest

from sync_tweaks.exceptions import ControllerCommitted
from sync_tweaks.queue import after_commit, transactions


@pytest.fixture
def emitted(monkeypatch):
	"""Realtime events actually sent (after commit)."""
	sent = []
	frappe.realtime.clear_realtime_log()  # a fresh transaction's realtime state
	monkeypatch.setattr(frappe.realtime, "emit_via_redis", lambda event, message, room: sent.append(event))
	return sent


def test_a_nested_scope_drops_its_after_commit_work_and_keeps_the_outer(emitted):
	ran = []
	frappe.db.after_commit.add(lambda: ran.append("outer"))
	with transactions.nested_callbacks("contract_nested"):
		frappe.db.after_commit.add(lambda: ran.append("inner"))
		frappe.publish_realtime("inner_event", {}, after_commit=True)
		after_commit.request()
	frappe.publish_realtime("outer_event", {}, after_commit=True)
	frappe.db.commit()
	assert ran == ["outer"]
	assert emitted == ["outer_event"], "the scope's realtime is dropped, later realtime still flushes"
	assert frappe.flags.get(after_commit.PENDING) is None, "no dispatch request left without its callback"


@pytest.fixture
def keys():
	"""Two Redis keys that exist, named as `after_commit.delete_key` expects; removed at the end."""
	cache = frappe.cache()
	names = [cache.make_key(f"sync_tweaks_contract_{i}") for i in range(2)]
	for name in names:
		cache.set(name, 1, ex=60)
	frappe.db.commit()
	yield names
	cache.delete(*names)


def _exists(key) -> bool:
	return frappe.cache().get(key) is not None  # the raw GET: `exists` would prefix the key again


def test_a_nested_scope_neither_runs_nor_steals_the_outer_requests(keys):
	outer, inner = keys
	after_commit.delete_key(outer)
	with transactions.nested_callbacks("contract_requests"):
		after_commit.delete_key(inner)  # e.g. a dry-run hook that frees a slot, then rolled back
	frappe.db.commit()
	assert not _exists(outer), "the transaction's own request ran after its commit"
	assert _exists(inner), "the rolled-back scope's request did not"


def test_a_rollback_in_the_callers_after_commit_callback_keeps_the_committed_requests(keys):
	after_commit.delete_key(keys[0])
	frappe.db.after_commit.add(frappe.db.rollback)  # the caller's, queued after ours
	frappe.db.commit()
	assert not _exists(keys[0])


def test_a_commit_refused_by_a_callers_before_commit_leaves_nothing_for_the_next_transaction(keys):
	doomed, later = keys
	frappe.db.before_commit.add(_refuse)  # runs before ours: Frappe already dropped the rollbacks
	after_commit.delete_key(doomed)
	with pytest.raises(frappe.ValidationError):
		frappe.db.commit()
	frappe.db.rollback()
	after_commit.delete_key(later)
	frappe.db.commit()
	assert not _exists(later), "the next transaction's request ran after its commit"
	assert _exists(doomed), "the rolled-back transaction's did not"


def test_a_nested_scope_rolls_back_its_writes():
	frappe.db.commit()
	with transactions.nested_callbacks("contract_writes"):
		frappe.get_doc({"doctype": "Sync Test Target", "title": "contract nested"}).insert(
			ignore_permissions=True
		)
	assert not frappe.db.exists("Sync Test Target", {"title": "contract nested"})


def test_no_commits_refuses_a_commit_even_when_swallowed():
	frappe.db.commit()
	with pytest.raises(ControllerCommitted):
		with transactions.no_commits(None):
			frappe.get_doc({"doctype": "Sync Test Target", "title": "contract commit"}).insert(
				ignore_permissions=True
			)
			try:
				frappe.db.commit()
			except ControllerCommitted:
				pass
			with pytest.raises(ControllerCommitted):
				frappe.db.commit()  # still refused: the guard re-arms itself
	transactions.rollback()
	assert not frappe.db.exists("Sync Test Target", {"title": "contract commit"})
	frappe.db.commit()  # allowed again once the scope ended


def test_rollback_after_a_refused_commit_forgets_realtime_and_dispatch_requests(emitted):
	with pytest.raises(ControllerCommitted):
		with transactions.no_commits(None):
			frappe.publish_realtime("doomed_event", {}, after_commit=True)
			after_commit.request()
			frappe.db.commit()  # refused, after Frappe already dropped the rollback callbacks
	transactions.rollback()
	frappe.publish_realtime("next_event", {}, after_commit=True)
	frappe.db.commit()
	assert emitted == ["next_event"]


def test_a_handed_over_copy_is_what_db_set_compares_with(monkeypatch):
	from sync_tweaks.utils.sync_job import create_sync_job
	from tests.utils import make_source

	job = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	job = frappe.get_doc("Sync Job", job.name)
	transactions.hand_over_before_save(job)
	reads = []
	real_get_doc = frappe.get_doc
	monkeypatch.setattr(frappe, "get_doc", lambda *a, **k: reads.append(a) or real_get_doc(*a, **k))
	job.db_set("coalesced_count", 5)
	assert job.get_doc_before_save().coalesced_count == 0 and not reads, "no second read of the row"
	assert frappe.db.get_value("Sync Job", job.name, "coalesced_count") == 5


def test_a_callers_earlier_after_commit_callback_cannot_drop_the_committed_requests(keys):
	def fail():
		raise RuntimeError("the caller's callback")

	frappe.db.after_commit.add(frappe.db.rollback)  # queued before ours: it empties Frappe's queue
	after_commit.delete_key(keys[0])
	frappe.db.commit()
	assert not _exists(keys[0])

	frappe.db.after_commit.add(fail)
	after_commit.delete_key(keys[1])
	with pytest.raises(RuntimeError):
		frappe.db.commit()  # the caller still hears its error, once the queue's work is done
	frappe.db.rollback()  # what Frappe's request handler does then
	assert not _exists(keys[1])


def test_a_savepoint_rolled_back_drops_its_requests_and_realtime_and_keeps_the_earlier(keys, emitted):
	earlier, dropped = keys
	after_commit.delete_key(earlier)
	frappe.publish_realtime("earlier_event", {}, after_commit=True)
	point = transactions.Savepoint("contract_point")
	after_commit.delete_key(dropped)  # e.g. a cancel that freed a slot, then rolled back
	frappe.publish_realtime("dropped_event", {}, after_commit=True)
	point.rollback()
	frappe.db.commit()
	assert not _exists(earlier) and _exists(dropped)
	assert emitted == ["earlier_event"]


def test_a_maintenance_action_that_fails_frees_no_slot():
	from sync_tweaks.queue import maintenance, slots

	assert slots.acquire("contract-key", "RUNNING-JOB", 60) == slots.TOOK
	try:

		def action(name):
			after_commit.request(release=[("contract-key", name)])  # one step asked to free it
			raise frappe.ValidationError("a later step failed")  # and the action is rolled back

		assert maintenance.each(["RUNNING-JOB"], action) == []
		frappe.db.commit()
		assert slots.holder("contract-key") == "RUNNING-JOB"
	finally:
		slots.release("contract-key", "RUNNING-JOB")


def test_a_nested_scope_keeps_frappes_realtime_messages_apart(emitted):
	frappe.publish_realtime("outer_event", {}, after_commit=True)
	with transactions.nested_callbacks("contract_messages"):
		frappe.publish_realtime("inner_event", {}, after_commit=True)  # e.g. a dry-run hook's save
		frappe.db.before_commit.add(_refuse)
		with pytest.raises(frappe.ValidationError):
			frappe.db.commit()  # refused inside: Frappe drops the scope's clear of its log
	frappe.db.commit()
	frappe.publish_realtime("next_event", {}, after_commit=True)
	frappe.db.commit()
	assert emitted == ["outer_event", "next_event"]


def _refuse():
	raise frappe.ValidationError("refused")


def test_requests_made_while_reading_from_a_replica_belong_to_the_primarys_transaction(keys):
	"""`frappe.read_only` switches `frappe.db` to a replica connection (`connect_replica`)."""
	primary = frappe.local.db
	replica = type("Replica", (), {})()
	for name in transactions.CALLBACKS:
		setattr(replica, name, type(getattr(primary, name))())
	after_commit.delete_key(keys[0])
	frappe.local.primary_db, frappe.local.replica_db, frappe.local.db = primary, replica, replica
	try:
		after_commit.delete_key(keys[1])
	finally:
		frappe.local.db = primary
		del frappe.local.replica_db, frappe.local.primary_db
	frappe.db.commit()
	assert not _exists(keys[0]) and not _exists(keys[1])


@pytest.fixture
def pushes(monkeypatch):
	"""The names of each RQ job the dispatcher pushes."""
	from sync_tweaks.queue import dispatcher

	pushed = []
	real = dispatcher._enqueue
	monkeypatch.setattr(
		dispatcher, "_enqueue", lambda job_id, names, *a: (pushed.append(names), real(job_id, names, *a))
	)
	return pushed


def test_failing_caller_callbacks_neither_stop_each_other_nor_the_jobs_push(pushes):
	from sync_tweaks.utils.sync_job import enqueue_sync_job
	from tests.utils import make_source

	source = make_source()  # it commits
	ran = []

	def fail(label):
		def callback():
			ran.append(label)
			raise RuntimeError(label)

		return callback

	frappe.db.after_commit.add(fail("first"))  # the caller's, e.g. a controller's hook
	frappe.db.after_commit.add(fail("second"))
	frappe.db.after_commit.add(lambda: ran.append("third"))
	frappe.db.after_commit.add(frappe.db.rollback)  # even a rollback comes before the dispatch
	job = enqueue_sync_job("Test Single Sync", source_doc=source)
	with pytest.raises(RuntimeError, match="first"):
		frappe.db.commit()
	frappe.db.rollback()
	assert ran == ["first", "second", "third"]
	assert pushes == [[job.name]], "the job reached RQ"
	logged = frappe.get_all("Error Log", filters={"method": "An after-commit callback failed"}, pluck="error")
	assert any("RuntimeError: second" in error for error in logged), "the second error is logged"


def test_rqs_timeout_in_a_callers_callback_stops_the_dispatch(pushes):
	from rq.timeouts import JobTimeoutException

	def time_out():
		raise JobTimeoutException("RQ's limit for the worker's RQ job")

	job = _enqueue_and_commit_with(time_out, JobTimeoutException)
	assert pushes == [] and frappe.db.get_value("Sync Job", job.name, "status") == "Waiting"


def _enqueue_and_commit_with(callback, error):
	"""Queue the caller's after-commit `callback`, enqueue a job, commit (which raises `error`) and
	roll back, as Frappe's request handler would; returns the job."""
	from sync_tweaks.utils.sync_job import enqueue_sync_job
	from tests.utils import make_source

	source = make_source()  # it commits
	frappe.db.after_commit.add(callback)
	job = enqueue_sync_job("Test Single Sync", source_doc=source)
	with pytest.raises(error):
		frappe.db.commit()
	frappe.db.rollback()
	return job


def test_savepoints_of_one_name_nest(keys):
	outer = transactions.Savepoint("contract_same")
	after_commit.delete_key(keys[0])
	inner = transactions.Savepoint("contract_same")  # e.g. a controller's own, inside ours
	after_commit.delete_key(keys[1])
	inner.rollback()
	outer.rollback()
	frappe.db.commit()
	assert _exists(keys[0]) and _exists(keys[1]), "both blocks' requests are dropped"


def test_a_failing_callback_that_queues_itself_again_ends_and_the_job_still_goes(pushes):
	calls = []

	def again():
		calls.append(1)
		frappe.db.after_commit.add(again)
		raise RuntimeError("fails and queues itself again")

	job = _enqueue_and_commit_with(again, RuntimeError)
	assert len(calls) == after_commit.MAX_CALLER_ERRORS + 1
	assert pushes == [[job.name]]


def test_rqs_timeout_on_a_broken_connection_still_frees_the_slot_and_stays_a_timeout():
	from rq.timeouts import JobTimeoutException

	from sync_tweaks.queue import slots

	assert slots.acquire("contract-timeout", "DONE-JOB", 60) == slots.TOOK
	after_commit.request(release=[("contract-timeout", "DONE-JOB")])  # the finished job's slot

	def alarm_in_a_query():
		frappe.db.close()  # as RQ's alarm inside a statement leaves PyMySQL's connection
		raise JobTimeoutException("RQ's limit for the worker's RQ job")

	frappe.db.after_commit.add(alarm_in_a_query)
	try:
		with pytest.raises(JobTimeoutException):
			frappe.db.commit()
		assert slots.holder("contract-timeout") is None
	finally:
		slots.release("contract-timeout", "DONE-JOB")
	frappe.db.sql("select 1")  # the connection works again


def test_a_callers_failing_callbacks_writes_are_rolled_back_and_later_errors_logged_even_if_dispatch_fails(
	monkeypatch, keys
):
	from sync_tweaks.queue import dispatcher

	monkeypatch.setattr(dispatcher, "run_dispatch", lambda keys=(), fill=True: 1 / 0)

	def half_done():
		frappe.get_doc({"doctype": "Sync Test Target", "title": "contract half done"}).insert(
			ignore_permissions=True
		)
		raise RuntimeError("half done")

	def second():
		raise RuntimeError("contract second failure")

	frappe.db.after_commit.add(half_done)
	frappe.db.after_commit.add(second)
	after_commit.request(keys=["contract-key"])
	with pytest.raises(RuntimeError, match="half done"):
		frappe.db.commit()
	frappe.db.rollback()
	assert not frappe.db.exists("Sync Test Target", {"title": "contract half done"})
	logged = frappe.get_all("Error Log", filters={"method": "An after-commit callback failed"}, pluck="error")
	assert any("contract second failure" in error for error in logged)


def test_a_callers_callback_request_waits_for_its_own_commit(keys):
	from sync_tweaks.queue import slots

	assert slots.acquire("contract-open", "RUNNING-JOB", 60) == slots.TOOK
	seen = []

	def cancel_other():  # e.g. cancels a running job: frees its slot once that is committed
		after_commit.request(release=[("contract-open", "RUNNING-JOB")])

	try:
		after_commit.delete_key(keys[0])
		frappe.db.after_commit.add(cancel_other)
		frappe.db.after_commit.add(lambda: seen.append(slots.holder("contract-open")))
		frappe.db.commit()
		assert seen == ["RUNNING-JOB"], "nothing was sent before the callback's transaction committed"
		assert not _exists(keys[0])
		frappe.db.rollback()
		assert slots.holder("contract-open") == "RUNNING-JOB", "its rollback dropped the request"
		cancel_other()
		frappe.db.after_commit.add(lambda: None)
		frappe.db.commit()
		assert slots.holder("contract-open") is None, "a commit sends it"
	finally:
		slots.release("contract-open", "RUNNING-JOB")


@pytest.fixture
def running_slot():
	"""A slot a running job holds."""
	from sync_tweaks.queue import slots

	assert slots.acquire("contract-running", "RUNNING-JOB", 60) == slots.TOOK
	yield "contract-running"
	slots.release("contract-running", "RUNNING-JOB")


def _holder(key):
	from sync_tweaks.queue import slots

	return slots.holder(key)


def test_requests_of_two_callers_callbacks_wait_together_for_their_commit(running_slot):
	after_commit.announce("list_update", {}, "Sync Job")  # nothing of it commits again
	frappe.db.after_commit.add(lambda: after_commit.request(release=[(running_slot, "RUNNING-JOB")]))
	frappe.db.after_commit.add(lambda: after_commit.announce("list_update", {}, "Sync Job"))
	frappe.db.commit()
	assert _holder(running_slot) == "RUNNING-JOB", "nothing sent before their transaction commits"
	frappe.db.commit()
	assert _holder(running_slot) is None, "its commit sent it"


def test_a_callbacks_refused_commit_then_its_error_sends_nothing(running_slot):
	def cancel_refused_then_fail():
		after_commit.request(release=[(running_slot, "RUNNING-JOB")])
		frappe.db.before_commit.add(_refuse)  # after ours
		with pytest.raises(frappe.ValidationError):
			frappe.db.commit()
		raise RuntimeError("then fails")

	after_commit.request()
	frappe.db.after_commit.add(cancel_refused_then_fail)
	with pytest.raises(RuntimeError):
		frappe.db.commit()
	frappe.db.rollback()
	assert _holder(running_slot) == "RUNNING-JOB"


def test_a_callbacks_refused_commit_then_its_rollback_leaves_nothing_for_a_later_commit(running_slot):
	def cancel_refused_then_rollback():
		frappe.db.before_commit.add(_refuse)  # before ours
		after_commit.request(release=[(running_slot, "RUNNING-JOB")])
		with pytest.raises(frappe.ValidationError):
			frappe.db.commit()
		frappe.db.rollback()

	after_commit.request()
	frappe.db.after_commit.add(cancel_refused_then_rollback)
	frappe.db.commit()
	frappe.db.commit()  # the next, unrelated transaction
	assert _holder(running_slot) == "RUNNING-JOB"


def test_a_failing_callback_on_a_lost_connection_still_frees_the_committed_slot(running_slot, monkeypatch):
	real = frappe.db.rollback
	failures = []

	def lost_connection(*args, **kwargs):
		if len(failures) < 2:
			failures.append(1)
			raise ConnectionError("the server has gone away")
		return real(*args, **kwargs)

	def fails():
		monkeypatch.setattr(frappe.db, "rollback", lost_connection)
		raise RuntimeError("the callback lost the connection")

	after_commit.request(release=[(running_slot, "RUNNING-JOB")])  # the job's end, committed
	frappe.db.after_commit.add(fails)
	with pytest.raises(ConnectionError):
		frappe.db.commit()
	monkeypatch.setattr(frappe.db, "rollback", real)
	frappe.db.rollback()
	assert _holder(running_slot) is None


def test_a_request_from_a_callback_queued_by_a_dispatch_round_waits_for_its_commit(running_slot, monkeypatch):
	from sync_tweaks.queue import dispatcher

	real = dispatcher.run_dispatch
	queued = []

	def run_dispatch(keys=(), fill=True):
		if not queued:  # e.g. code in an on_children_done hook
			queued.append(1)
			frappe.db.after_commit.add(lambda: after_commit.request(release=[(running_slot, "RUNNING-JOB")]))
		return real(keys=keys, fill=fill)

	monkeypatch.setattr(dispatcher, "run_dispatch", run_dispatch)
	after_commit.request(keys=["contract-key"])
	frappe.db.commit()
	assert _holder(running_slot) == "RUNNING-JOB"
	frappe.db.commit()  # the transaction the callback left open
	assert _holder(running_slot) is None


class CommitFailed(Exception):
	pass


@pytest.fixture
def failing_commit(monkeypatch):
	"""`failing_commit["armed"] = True`: the next SQL COMMIT fails, its transaction rolled back (a
	lost connection, a cluster's certification failure)."""
	state = {"armed": False}
	db = frappe.db

	def fail(rollback):
		state["armed"] = False
		rollback()
		raise CommitFailed("Lost connection to server during query (COMMIT)")

	if hasattr(db, "_end_transaction"):  # the stand-in ends transactions here
		real_end = db._end_transaction
		monkeypatch.setattr(
			db,
			"_end_transaction",
			lambda verb: (
				fail(lambda: real_end("ROLLBACK")) if verb == "COMMIT" and state["armed"] else real_end(verb)
			),
		)
	else:
		real_sql = db.sql
		monkeypatch.setattr(
			db,
			"sql",
			lambda query, *a, **k: (
				fail(lambda: real_sql("rollback"))
				if state["armed"] and str(query).strip().lower() == "commit"
				else real_sql(query, *a, **k)
			),
		)
	return state


@pytest.mark.parametrize("swallowed", [False, True])
def test_a_callbacks_commit_that_fails_sends_nothing(running_slot, failing_commit, swallowed):
	def cancel_then_commit():  # e.g. cancels a running job; its COMMIT fails
		after_commit.request(release=[(running_slot, "RUNNING-JOB")])
		failing_commit["armed"] = True
		try:
			frappe.db.commit()
		except CommitFailed:
			if not swallowed:
				raise

	after_commit.request()
	frappe.db.after_commit.add(cancel_then_commit)
	with contextlib.suppress(CommitFailed):
		frappe.db.commit()
	frappe.db.rollback()
	assert _holder(running_slot) == "RUNNING-JOB", "freed though its transaction never committed"


def test_a_jobs_slot_stays_held_while_the_callers_after_commit_callbacks_run(running_slot):
	"""The key's next job may start only once the job's own after-commit work (a controller's
	callback calling an external API, say) is done."""
	from sync_tweaks.queue import slots

	seen = []
	after_commit.request(release=[(running_slot, "RUNNING-JOB")])  # the job ended
	frappe.db.after_commit.add(
		lambda: seen.append((_holder(running_slot), slots.acquire(running_slot, "NEXT", 60)))
	)
	frappe.db.commit()
	assert seen == [("RUNNING-JOB", 0)], "another dispatcher could not take the slot meanwhile"
	assert _holder(running_slot) is None, "and it is free once they ran"


def test_a_message_that_cannot_be_sent_neither_stops_the_callers_callbacks_nor_the_next_dispatch(
	pushes, emitted
):
	ran = []
	after_commit.announce("list_update", {"bad": object()}, "Sync Job")  # not JSON
	frappe.db.after_commit.add(lambda: ran.append("caller"))
	with contextlib.suppress(TypeError):
		frappe.db.commit()
	assert ran == ["caller"]
	assert frappe.flags.get(after_commit.RUNNING) is None, "later commits still dispatch"


def test_a_callers_request_in_a_transaction_without_ours_waits_for_its_commit(running_slot):
	seen = []
	frappe.db.after_commit.add(lambda: after_commit.request(release=[(running_slot, "RUNNING-JOB")]))
	frappe.db.after_commit.add(lambda: seen.append(_holder(running_slot)))
	frappe.db.commit()  # this transaction asked nothing of the queue
	assert seen == ["RUNNING-JOB"]
	frappe.db.rollback()
	assert _holder(running_slot) == "RUNNING-JOB", "rolled back: never sent"


@pytest.mark.parametrize("interrupt", [SystemExit, KeyboardInterrupt])
def test_an_interrupt_in_a_callers_callback_still_frees_the_committed_slot(running_slot, interrupt):
	"""e.g. gunicorn's worker timeout during a slow external call in an after-commit hook."""

	def interrupted():
		raise interrupt(1)

	after_commit.request(release=[(running_slot, "RUNNING-JOB")])
	frappe.db.after_commit.add(interrupted)
	with pytest.raises(interrupt):
		frappe.db.commit()
	assert _holder(running_slot) is None
