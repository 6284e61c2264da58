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
