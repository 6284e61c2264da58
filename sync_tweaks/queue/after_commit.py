"""What follows a commit: tell Desk, free the slots of jobs that stopped holding them, then dispatch.

One callback per transaction gathers every request, so a request that cancels 1,000 jobs frees
1,000 slots in one pass instead of nesting 1,000 commits, and a job's Redis work after its commit
(realtime messages, slots) takes two round trips, not one per message and key. It
never raises into the committing caller: errors go to the Error Log, and Redis being down only
delays jobs until maintenance runs.

At a top-level commit the caller's own after-commit callbacks run before the slots are freed and
the next jobs queued (`run` goes first and runs them); requests they make wait for their own commit.
Known limit: code that swallows a failed COMMIT inside an after-commit callback and then commits
again, or that fails a COMMIT inside a commit nested in another callback, may have the failed
transaction's requests sent with the next commit (the locked line check in `dispatcher._take` still
keeps one job per key).
"""

import contextlib
import copy

import frappe
import redis
from frappe.realtime import get_doc_room, get_doctype_room
from frappe.utils.background_jobs import get_redis_connection_without_auth
from rq.timeouts import JobTimeoutException

from sync_tweaks.backfill import rollup
from sync_tweaks.queue import dispatcher, fanout, lines, slots, transactions

PENDING = "sync_tweaks_after_commit"
RUNNING = "sync_tweaks_after_commit_running"
# keys whose dispatch a batch holds back until its group of jobs is done (see `held`)
HELD = "sync_tweaks_after_commit_held"
MAX_ROUNDS = 10
MAX_CALLER_ERRORS = 100
MAX_BOUNCES = 100  # how often `_rearm` lets other before_commit callbacks go first


def request(keys=(), release=(), parents=(), backfills=()):
	"""After this transaction commits: release `release` ((key, holder) pairs), then dispatch,
	queueing the oldest Waiting job of each of `keys` first, then check whether the relayed
	`parents` have all their children done (`fanout`), then fold the roll-ups of `backfills`
	(inside a worker at most once a second each, and once more when its RQ job ends). Nothing
	happens on rollback."""
	pending = _pending()
	pending["dispatch"] = True
	pending["keys"].update(key for key in keys if key)
	pending["release"].update((key, holder) for key, holder in release if key)
	pending["parents"].update(parent for parent in parents if parent)
	pending["backfills"].update(backfill for backfill in backfills if backfill)


def announce(event: str, message: dict, doctype: str, docname: str | None = None):
	"""After commit, send Desk `event` for the form of `doctype` `docname` (for the list views of
	`doctype` when `docname` is None and `event` is "list_update"), as Frappe's
	`publish_realtime(..., after_commit=True)` would."""
	room = get_doc_room(doctype, docname) if docname else get_doctype_room(doctype)
	messages = _pending()["announce"]
	if (event, message, room) not in messages:
		messages.append((event, message, room))


def refresh_slot(key: str, holder: str, timeout: int | None):
	"""After commit, extend the slot's lifetime if `holder` still holds it (`slots.refresh_in`)."""
	_pending()["refresh"].add((key, holder, timeout))


def delete_key(key: str):
	"""After commit, delete the Redis key `key` (as made by `frappe.cache().make_key`)."""
	_pending()["delete"].add(key)


def _pending() -> dict:
	db = _primary_db()
	pending = frappe.flags.get(PENDING)
	if pending is not None and not (_waits(db.after_commit, run) or _waits(db.before_commit, _rearm)):
		# left behind by a transaction whose commit failed in a caller's before_commit (before ours
		# could arm the forget) and that was then rolled back: its requests died with it
		pending = None
	if pending is None:
		pending = frappe.flags[PENDING] = {
			"dispatch": False,
			"keys": set(),
			"release": set(),
			"parents": set(),
			"backfills": set(),
			"announce": [],
			"refresh": set(),
			"delete": set(),
		}
		db.after_rollback.add(forget)
		if frappe.flags.get(RUNNING) is not None:
			# inside `run`: its loop over the caller's callbacks would take a `run` queued now
			_arm()
		else:
			_add_first(db.after_commit, run)
			db.before_commit.add(_forget_on_rollback)
	return pending


def _primary_db():
	"""The database whose transaction the requests belong to: the primary one, also while
	`frappe.read_only` has switched `frappe.db` to a read replica."""
	local = frappe.local
	replica = getattr(local, "replica_db", None)
	if replica is not None and local.db is replica:
		return getattr(local, "primary_db", None) or local.db
	return local.db


# Frappe's CallbackManager has no public query or way to queue first: its deque, when it has one
def _waits(callbacks, function) -> bool:
	"""Whether `function` waits in `callbacks` (without the deque: assume it does, drop nothing)."""
	functions = getattr(callbacks, "_functions", None)
	return functions is None or function in functions


def _add_first(callbacks, function):
	functions = getattr(callbacks, "_functions", None)
	if functions is None:
		callbacks.add(function)
	else:
		functions.appendleft(function)


def forget():
	frappe.flags.pop(PENDING, None)


@contextlib.contextmanager
def set_aside():
	"""The block's requests are its own: the transaction's earlier ones are out of its reach, and
	what it requested is dropped when it ends (a savepoint rolled back as if a transaction)."""
	outer = frappe.flags.pop(PENDING, None)
	try:
		yield
	finally:
		forget()
		if outer is not None:
			frappe.flags[PENDING] = outer


def snapshot() -> dict | None:
	"""A copy of the transaction's requests, for `restore` when a savepoint is rolled back."""
	return _copy(frappe.flags.get(PENDING))


def restore(kept: dict | None):
	"""Back to the requests `snapshot` copied: those made since are dropped."""
	if kept is None:
		forget()
	else:
		frappe.flags[PENDING] = _copy(kept)


def _copy(pending: dict | None) -> dict | None:
	return None if pending is None else {name: copy.copy(value) for name, value in pending.items()}


def _forget_on_rollback():
	"""Before the commit: the requests are now the committing transaction's (see `run`)."""
	pending = frappe.flags.get(PENDING)
	if pending is not None:
		pending["committing"] = True
	_primary_db().after_rollback.add(forget)


def run():
	"""The after-commit callback."""
	committed = frappe.flags.get(RUNNING)
	if committed is not None:
		# a commit inside the loop below: the loop takes its requests, out of reach of a later
		# rollback (a parent's check) that runs the forget this commit left behind; Desk hears the
		# jobs it queued now, before their push to RQ (registered after this callback) runs.
		# Requests a caller's after-commit callback made without committing belong to the
		# transaction still open, whose commit will run this again (see `_arm`).
		pending = frappe.flags.get(PENDING)
		if pending is not None and pending.get("committing"):
			_send_once(_take_committed(committed))
		elif pending is not None:
			_arm()
		return
	pending = frappe.flags.get(PENDING)
	if pending is not None and not pending.get("committing"):
		# made by a caller's after-commit callback after this commit's before_commit: not committed
		_arm()
		return
	committed = frappe.flags[RUNNING] = []
	callers_error = None
	try:
		# realtime only: Desk hears Queued before the push; slots wait for the caller's callbacks
		try:
			_announce_once(_take_committed(committed))
		except JobTimeoutException:
			raise
		except Exception:
			frappe.log_error(title="Sync Job realtime after commit failed")
		callers_error, later_errors = run_callers_callbacks()
		if callers_error:
			for pending in committed:
				_send_once(pending)  # committed: no failure below may keep it from Redis
			# what the committer does next: roll back what its callbacks wrote after the commit,
			# before the dispatch's own commit would keep it
			frappe.db.rollback()
			for traceback in later_errors:
				frappe.log_error(title="An after-commit callback failed", message=traceback)
			if later_errors:
				frappe.db.commit()
		rounds = 0
		while committed and rounds < MAX_ROUNDS:
			pending = committed.pop(0)
			_send_once(pending)
			keys = pending["keys"] | {key for key, _ in pending["release"]}
			if not (pending["dispatch"] or keys):
				continue  # nothing here commits: only the rounds that may commit again count
			rounds += 1
			held = frappe.flags.get(HELD)
			if held is not None:
				# a key's next job goes at once (an idle worker may take it); the fill pass once per group
				held.add("")
				lined_up = lines.waiting_keys(keys)
				if lined_up:
					dispatcher.run_dispatch(keys=sorted(lined_up), fill=False)
			else:
				dispatcher.run_dispatch(keys=sorted(keys))
			for parent in sorted(pending["parents"]):
				fanout.complete(parent)  # its own transaction, after every other callback ran
			rollup.touch(sorted(pending["backfills"]), throttle=held is not None)
	except redis.exceptions.RedisError:
		frappe.db.rollback()
	except JobTimeoutException:
		for pending in committed:
			_send_once(pending)  # the slots at least (no database needed): the next job waits for maintenance
		with contextlib.suppress(Exception):
			transactions.rollback()  # reconnects: RQ's alarm in a query leaves the connection unusable
		raise  # RQ's own limit for the worker's RQ job: its batch must stop
	except Exception:
		frappe.db.rollback()
		frappe.log_error(title="Sync Job dispatch after commit failed")
		frappe.db.commit()
	except BaseException:
		for pending in committed:
			_send_once(pending)  # an interrupt (SystemExit, KeyboardInterrupt): the slots at least
		raise
	finally:
		frappe.flags.pop(RUNNING, None)
		if not _keep_open():
			forget()
	if callers_error:
		raise callers_error


def _keep_open() -> bool:
	"""Requests a caller's after-commit callback made in the transaction it left open wait for that
	transaction's commit (`_rearm`)."""
	pending = frappe.flags.get(PENDING)
	return (
		pending is not None and not pending.get("committing") and _waits(_primary_db().before_commit, _rearm)
	)


def _arm():
	db = _primary_db()
	if not _waits(db.before_commit, _rearm):
		db.before_commit.add(_rearm)


def _rearm():
	"""At the commit of a transaction that a caller's after-commit callback left open with requests:
	`run` takes them after it. Last of the commit's before_commit callbacks: one that refuses the
	commit after it must not leave the requests marked as committed."""
	db = _primary_db()
	functions = getattr(db.before_commit, "_functions", None)
	pending = frappe.flags.get(PENDING)
	if pending is None:
		return  # its requests were dropped (a savepoint rolled back): nothing waits for this commit
	if functions and pending.get("bounces", 0) < MAX_BOUNCES:  # one as set on being last would loop
		pending["bounces"] = pending.get("bounces", 0) + 1
		db.before_commit.add(_rearm)
		return
	_add_first(db.after_commit, run)
	_forget_on_rollback()


def _send_once(pending: dict | None):
	if pending is not None and not pending.get("sent"):
		pending["sent"] = True  # before: an alarm inside must not make the handler send it again
		_send_slots(pending)
		if not pending.get("announced"):
			_send_announce(pending)


def _announce_once(pending: dict | None):
	if pending is not None and not pending.get("sent") and not pending.get("announced"):
		pending["announced"] = True
		_send_announce(pending)


def _take_committed(committed: list) -> dict | None:
	pending = frappe.flags.pop(PENDING, None)
	if pending is not None:
		committed.append(pending)
	return pending


def run_callers_callbacks() -> tuple[Exception | None, list[str]]:
	"""Run all of the caller's after-commit callbacks before the dispatch (whose commit would run
	what is left, and whose rollback on an error would drop its own push to RQ). Returns the first
	error, the caller's, raised once the dispatch is done, and the tracebacks of later ones, for the
	Error Log; after MAX_CALLER_ERRORS the rest of the queue is dropped (a callback that fails and
	queues itself again would loop). RQ's timeout of the worker's RQ job is raised at once: its
	batch must stop."""
	callbacks = _primary_db().after_commit
	functions = getattr(callbacks, "_functions", None)
	first, later = None, []
	while True:
		try:
			if functions is None:
				callbacks.run()
				return first, later
			while functions:
				functions.popleft()()
				_drop_failed_commit(functions)
			return first, later
		except JobTimeoutException:
			raise
		except Exception as e:
			_drop_failed_commit(functions)
			if first is None:
				first = e
			else:
				later.append(frappe.get_traceback())
			if len(later) >= MAX_CALLER_ERRORS:
				callbacks.reset()
				later.append(
					f"{len(later)} after-commit callbacks failed after the first: the rest were dropped"
				)
				return first, later


def _drop_failed_commit(functions):
	"""A `run` left at the head of the queue after a caller's callback: `_rearm` queued it for a
	commit inside that callback whose COMMIT then failed (a commit that succeeds runs it first)."""
	if functions and functions[0] is run:
		functions.popleft()
		pending = frappe.flags.get(PENDING)
		if pending is not None and pending.get("committing") and not pending.get("sent"):
			forget()


@contextlib.contextmanager
def held():
	"""While a worker runs a group of jobs: free slots and serve the keys with a job waiting at each
	commit, but run the fill pass once, when `flush` is called or the block ends (one pass per group
	instead of one per job)."""
	if frappe.flags.get(HELD) is not None:
		yield  # an outer block flushes
		return
	frappe.flags[HELD] = set()
	try:
		yield
	except BaseException:
		# the batch failed mid-transaction (a claim half written): flush's commit must not keep it
		transactions.rollback()  # reconnects: RQ's alarm in a query leaves the connection closed
		raise
	finally:
		try:
			flush()
			rollup.fold_trailing()
		finally:
			frappe.flags.pop(HELD, None)


def flush():
	"""Dispatch what `held` kept back (in a transaction of its own)."""
	keys = frappe.flags.get(HELD)
	if not keys:
		return
	frappe.flags[HELD] = set()
	try:
		dispatcher.run_dispatch(keys=sorted(keys))
	except Exception:
		frappe.db.rollback()
		frappe.log_error(title="Sync Job dispatch after a batch failed")
		frappe.db.commit()


def _send_slots(pending: dict):
	"""The transaction's slot and key work, in one round trip to the cache. On a Redis error slots
	expire by their TTL and the breaker's count is advisory."""
	with contextlib.suppress(redis.exceptions.RedisError):
		if pending["refresh"] or pending["release"] or pending["delete"]:
			pipe = frappe.cache().pipeline(transaction=False)
			for key, holder, timeout in pending["refresh"]:
				slots.refresh_in(pipe, key, holder, timeout)
			for key, holder in pending["release"]:
				slots.release_in(pipe, key, holder)
			if pending["delete"]:
				pipe.delete(*pending["delete"])
			pipe.execute()


def _send_announce(pending: dict):
	"""The transaction's realtime messages, in one round trip to the queue's Redis; on a Redis error
	they are lost, as Frappe's own would be."""
	with contextlib.suppress(redis.exceptions.RedisError):
		if pending["announce"]:
			pipe = get_redis_connection_without_auth().pipeline(transaction=False)
			for event, message, room in pending["announce"]:
				# the message Frappe's emit_via_redis sends
				envelope = {"event": event, "message": message, "room": room, "namespace": frappe.local.site}
				pipe.publish("events", frappe.as_json(envelope))
			pipe.execute()
