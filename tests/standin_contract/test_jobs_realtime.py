"""Contract tests of background jobs and realtime on real Redis/RQ: public Frappe 15 API only."""

import json

import frappe
import pytest
from frappe.utils.background_jobs import create_job_id, get_job, get_queue, get_redis_conn, is_job_enqueued


@pytest.fixture(autouse=True)
def _clean():
	frappe.db.rollback()
	get_queue("default").empty()
	yield
	frappe.db.rollback()
	get_queue("default").empty()


def _marker():
	return "contract-job-" + frappe.generate_hash(length=10)


def test_queue_names_and_job_ids():
	from frappe.utils import get_bench_id

	q = get_queue("default")
	assert q.name == f"{get_bench_id()}:default"
	job = frappe.enqueue("frappe.log_error", title=_marker(), job_id="contract-id")
	assert job.id == f"{frappe.local.site}::contract-id" == create_job_id("contract-id")
	assert get_job("contract-id").id == job.id and is_job_enqueued("contract-id")
	assert frappe.enqueue("frappe.log_error", title="dup", job_id="contract-id", deduplicate=True) is None
	assert q.count == 1
	with pytest.raises(frappe.ValidationError):
		frappe.enqueue("frappe.log_error", queue="no-such-queue")


def test_enqueue_after_commit_pushes_nothing_on_rollback():
	q = get_queue("default")
	assert frappe.enqueue("frappe.log_error", title=_marker(), enqueue_after_commit=True) is None
	assert q.count == 0
	frappe.db.rollback()
	frappe.db.commit()
	assert q.count == 0
	frappe.enqueue("frappe.log_error", title=_marker(), enqueue_after_commit=True)
	frappe.db.commit()
	assert q.count == 1


def test_now_runs_inline_without_commit():
	title = _marker()
	frappe.enqueue("frappe.log_error", title=title, now=True)
	assert frappe.db.exists("Error Log", {"method": title})
	frappe.db.rollback()
	assert not frappe.db.exists("Error Log", {"method": title})


@pytest.mark.slow
def test_worker_runs_job_and_commits(start_worker):
	title = _marker()
	frappe.enqueue("frappe.log_error", title=title, message="from worker")
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
	job = frappe.enqueue("frappe.throw", msg=_marker())
	frappe.db.commit()
	result = start_worker("default")
	assert result.returncode == 0, result.stderr
	assert job.get_status(refresh=True) == "failed"
	log = frappe.db.get_value(
		"Error Log", {"method": "frappe.throw"}, ["name", "error"], as_dict=True, order_by="creation desc"
	)
	assert log and "ValidationError" in log.error
	frappe.db.delete("Error Log", {"name": log.name})
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
