"""The seams between a job and Frappe's transaction, through Frappe's public callback managers only.

- `no_commits`: a controller that commits fails its job (not retried: a code bug), even if it
  swallows the error.
- `nested_callbacks`: a dry-run hook runs as if in a nested transaction; when its savepoint is rolled
  back, its after-rollback callbacks run and its after-commit callbacks and requests are dropped,
  leaving the job's own (realtime, dispatch) intact.
- `Savepoint`: a savepoint whose rollback also drops the block's realtime messages and requests.
- `rollback`: roll back, reconnecting when a signal broke the connection mid-statement.
- `hand_over_before_save`: give `db_set` the copy of the row the worker holds locked, instead of the
  re-read it makes for "value changed" notifications (Frappe has no public way to do this).
"""

import contextlib
import copy
import itertools

import frappe
from frappe import _
from frappe.realtime import clear_realtime_log

from sync_tweaks.exceptions import ControllerCommitted
from sync_tweaks.queue import after_commit

CALLBACKS = ("before_commit", "after_commit", "before_rollback", "after_rollback")


@contextlib.contextmanager
def no_commits(job):
	"""Refuse commits while the block runs; raise ControllerCommitted at its end if one was tried."""
	guard = frappe.local.sync_tweaks_commit_guard = _CommitGuard()
	guard.arm()
	try:
		yield
	finally:
		guard.active = False
		frappe.local.sync_tweaks_commit_guard = None
	if guard.tried:
		raise ControllerCommitted(
			_("Sync controllers must not commit; the framework commits when the job ends")
		)


class _CommitGuard:
	"""A before_commit callback that aborts the commit; it re-arms itself since run() pops it."""

	def __init__(self):
		self.active = True
		self.tried = False

	def arm(self):
		frappe.db.before_commit.add(self)

	def __call__(self):
		if not self.active:
			return
		self.tried = True
		self.arm()
		raise ControllerCommitted(
			_("Sync controllers must not commit; the framework commits when the job ends")
		)


@contextlib.contextmanager
def nested_callbacks(savepoint: str):
	"""Run the block inside `savepoint`, then roll it back as if it were a transaction of its own."""
	db = frappe.db
	outer = {name: getattr(db, name) for name in CALLBACKS}
	outer_messages = getattr(frappe.local, "_realtime_log", None)
	clear_realtime_log()  # the block's realtime messages go to a log of its own
	with after_commit.set_aside():  # until the block's own rollback callbacks have run
		try:
			for name in CALLBACKS:
				setattr(db, name, type(outer[name])())
			guard = getattr(frappe.local, "sync_tweaks_commit_guard", None)
			if guard and guard.active:
				guard.arm()  # a commit stays refused inside
			db.savepoint(savepoint)
			yield
		finally:
			inner_rollback = db.after_rollback
			for name in CALLBACKS:
				setattr(db, name, outer[name])
			try:
				db.rollback(save_point=savepoint)
				inner_rollback.run()
			finally:
				clear_realtime_log()  # also when a refused commit had dropped the block's own clear
				if outer_messages is not None:
					frappe.local._realtime_log = outer_messages


_savepoints = itertools.count(1)


class Savepoint:
	"""`frappe.db.savepoint(name)` that also covers what the transaction does after its commit:
	`rollback()` undoes the block's writes, and drops the realtime messages and the queue's
	requests (slots, dispatch, Redis keys) it made."""

	def __init__(self, name: str):
		# a name of its own: a second savepoint of one name would replace the first in the database
		self.name = f"{name}_{next(_savepoints)}"
		frappe.db.savepoint(self.name)
		self.requests = after_commit.snapshot()
		messages = getattr(frappe.local, "_realtime_log", None)
		self.messages = 0 if messages is None else len(messages)

	def rollback(self):
		frappe.db.rollback(save_point=self.name)
		after_commit.restore(self.requests)
		messages = getattr(frappe.local, "_realtime_log", None)
		if messages is not None:
			del messages[self.messages :]  # Frappe's flush stays queued: the log must stay


def rollback():
	"""Roll back, reconnecting when the connection is broken (a timeout signal that interrupted a
	statement leaves PyMySQL's connection unusable), and forget what the transaction had scheduled
	after commit even when a refused commit had already dropped Frappe's rollback callbacks."""
	try:
		frappe.db.rollback()
		frappe.db.sql("select 1")
	except Exception:
		with contextlib.suppress(Exception):
			frappe.db.close()
		frappe.db.connect()
		frappe.db.rollback()
	clear_realtime_log()
	after_commit.forget()


def hand_over_before_save(doc):
	"""Let `doc.db_set` treat `doc` as it is now as the stored row (the caller holds its lock)."""
	before = copy.copy(doc)
	before.__dict__.pop("_doc_before_save", None)
	doc._doc_before_save = before
