"""Contract tests of the transaction seams (sync_tweaks/queue/transactions.py): they rely only on
Frappe's public callback managers and realtime log, and must behave the same on a real site."""

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

	def refuse():
		raise frappe.ValidationError("refused")

	frappe.db.before_commit.add(refuse)  # runs before ours: Frappe already dropped the rollbacks
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
