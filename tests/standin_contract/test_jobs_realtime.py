"""Contract tests of background jobs and realtime on real Redis/RQ: public Frappe 15/16 API only."""

import json

import frappe
import pytest
from frappe.utils.background_jobs import create_job_id, get_job, get_queue, get_redis_conn, is_job_enqueued


@pytest.fixture(autouse=True)
def _clean():
	"""Roll back, and delete the RQ jobs the test pushed (the queues may hold other jobs: leave them)."""
	frappe.db.rollback()
	yield
	frappe.db.rollback()
	for job_id in _pushed:
		if job := get_job(job_id):
			job.delete()
	_pushed.clear()


_pushed = []


def _marker():
	"""A fresh title and RQ job id, deleted after the test."""
	_pushed.append("contract-job-" + frappe.generate_hash(length=10))
	return _pushed[-1]


def _make_todo(description):
	frappe.get_doc({"doctype": "ToDo", "description": description}).insert()


def test_queue_names_and_job_ids(frappe_version):
	"""15: RQ job id `{site}::{job_id}`; 16 (RQ 2 rejects ":"): `{site}||{job_id}`, ":" made "|"."""
	from frappe.utils import get_bench_id

	q = get_queue("default")
	assert q.name == f"{get_bench_id()}:default"
	job_id = _marker() + ":part"
	_pushed.append(job_id)
	job = frappe.enqueue("frappe.log_error", title=job_id, job_id=job_id)
	site = frappe.local.site
	expected = f"{site}||{job_id.replace(':', '|')}" if frappe_version >= (16,) else f"{site}::{job_id}"
	assert job.id == expected == create_job_id(job_id)
	assert get_job(job_id).id == job.id and is_job_enqueued(job_id) and job.id in q.job_ids
	assert frappe.enqueue("frappe.log_error", title="dup", job_id=job_id, deduplicate=True) is None
	assert q.job_ids.count(job.id) == 1
	with pytest.raises(frappe.ValidationError):
		frappe.enqueue("frappe.log_error", queue="no-such-queue")


def test_enqueue_refuses_a_full_queue(frappe_version, site_conf):
	"""15.29: no cap; 15.101: site config `max_queued_jobs` caps each queue; 16: that or 500, plus 50
	per site."""
	from frappe.utils import get_sites

	site_conf(max_queued_jobs=get_queue("short").count + 2)
	if not hasattr(frappe, "QueueOverloaded"):  # 15.29 has no cap: every push goes through
		for _ in range(3):
			job_id = _marker()
			frappe.enqueue("frappe.log_error", queue="short", title=job_id, job_id=job_id)
			assert is_job_enqueued(job_id)
		return
	for _ in range(2 + (50 * len(get_sites()) if frappe_version >= (16,) else 0)):
		job_id = _marker()
		frappe.enqueue("frappe.log_error", queue="short", title=job_id, job_id=job_id)
	with pytest.raises(frappe.QueueOverloaded):
		frappe.enqueue("frappe.log_error", queue="short", title="over", job_id=_marker())


def test_enqueue_after_commit_pushes_nothing_on_rollback():
	job_id = _marker()
	assert frappe.enqueue("frappe.log_error", title=job_id, job_id=job_id, enqueue_after_commit=True) is None
	assert get_job(job_id) is None
	frappe.db.rollback()
	frappe.db.commit()
	assert get_job(job_id) is None
	frappe.enqueue("frappe.log_error", title=job_id, job_id=job_id, enqueue_after_commit=True)
	frappe.db.commit()
	assert is_job_enqueued(job_id)


def test_now_runs_inline_without_commit():
	description = _marker()
	frappe.enqueue(_make_todo, description=description, now=True)
	assert frappe.db.exists("ToDo", {"description": description})
	frappe.db.rollback()
	assert not frappe.db.exists("ToDo", {"description": description})


def test_is_async_false_runs_inline_and_commits():
	description = _marker()
	frappe.enqueue(_make_todo, description=description, is_async=False)
	frappe.db.rollback()
	assert frappe.db.exists("ToDo", {"description": description})
	frappe.db.delete("ToDo", {"description": description})
	frappe.db.commit()


def test_error_log_survives_rollback():
	# Error Log is a MyISAM table in Frappe 15: its rows are not part of the transaction
	title = _marker()
	frappe.get_doc({"doctype": "ToDo", "description": title}).insert()
	frappe.log_error(title=title)
	frappe.db.rollback()
	assert frappe.db.exists("Error Log", {"method": title})
	assert not frappe.db.exists("ToDo", {"description": title})
	frappe.db.delete("Error Log", {"method": title})
	frappe.db.commit()


@pytest.mark.slow
def test_worker_runs_job_and_commits(start_worker):
	title = _marker()
	frappe.enqueue("frappe.log_error", title=title, message="from worker", job_id=title)
	frappe.db.commit()
	result = start_worker("default")
	assert result.returncode == 0, result.stderr
	frappe.db.rollback()
	row = frappe.db.get_value("Error Log", {"method": title}, ["error", "owner"], as_dict=True)
	assert row and row.error == "from worker" and row.owner == "Administrator"
	frappe.db.delete("Error Log", {"method": title})
	frappe.db.commit()


@pytest.mark.slow
def test_failing_job_is_rolled_back_and_logged(start_worker):
	marker = _marker()
	job = frappe.enqueue("frappe.throw", msg=marker, job_id=marker)
	frappe.db.commit()
	result = start_worker("default")
	assert result.returncode == 0, result.stderr
	assert job.get_status(refresh=True) == "failed"
	frappe.db.rollback()
	log = frappe.db.get_value("Error Log", {"method": "frappe.throw", "error": ["like", f"%{marker}%"]})
	assert log
	frappe.db.delete("Error Log", {"name": log})
	frappe.db.commit()


def test_realtime_published_after_commit_only():
	pubsub = get_redis_conn().pubsub(ignore_subscribe_messages=True)
	pubsub.subscribe("events")
	pubsub.get_message(timeout=1)
	todo = frappe.get_doc({"doctype": "ToDo", "description": "realtime"}).insert()
	frappe.publish_realtime("contract_event", {"x": 1}, doctype="ToDo", docname=todo.name, after_commit=True)
	assert pubsub.get_message(timeout=0.5) is None
	frappe.db.commit()
	messages = []
	while msg := pubsub.get_message(timeout=1):
		messages.append(json.loads(msg["data"]))
	events = {m["event"]: m for m in messages}
	assert events["contract_event"]["room"] == f"doc:ToDo/{todo.name}"
	assert events["contract_event"]["namespace"] == frappe.local.site
	assert events["doc_update"]["message"]["name"] == todo.name
	assert events["list_update"]["room"] == "doctype:ToDo"
	frappe.publish_realtime("contract_dropped", {}, after_commit=True)
	frappe.db.rollback()
	frappe.db.commit()
	assert pubsub.get_message(timeout=0.5) is None
	frappe.delete_doc("ToDo", todo.name)
	frappe.db.commit()
	pubsub.close()
