"""The Python API: parameters, defaults, the transactional outbox, coalescing and bulk enqueue."""

import frappe
import pytest
from frappe.utils.background_jobs import get_job, get_queue

from sync_tweaks.exceptions import InvalidSyncJobRequest, SyncJobError
from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import SyncJob
from sync_tweaks.utils.sync_job import create_sync_job, enqueue_sync_job, enqueue_sync_jobs
from tests.utils import make_source, run_queued, set_type


def job_count(**filters):
	return frappe.db.count("Sync Job", {"sync_job_type": ["like", "Test %"], **filters})


def test_create_returns_the_document_with_type_defaults():
	source = make_source()
	job = create_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False)
	assert isinstance(job, SyncJob)
	assert (job.status, job.queue, job.timeout, job.max_retries) == ("Pending", "default", 60, 2)
	assert job.source_document_type == "Sync Test Source" and job.target_document_type == "Sync Test Target"
	assert job.title == f"Sync Test Source: {source.name}"
	assert job.concurrency_key == f"source:Test Single Sync:Sync Test Source:{source.name}"


def test_parameters_as_one_dict_and_explicit_zeros():
	source = make_source()
	job = create_sync_job(
		{
			"sync_job_type": "Test Single Sync",
			"source_doc": source,
			"retry_delay": 0,
			"max_retries": 0,
			"timeout": 5,
		}
	)
	assert (job.retry_delay, job.max_retries, job.timeout) == (0, 0, 5)


def test_operation_is_title_cased_and_title_names_the_target():
	source = make_source()
	job = create_sync_job(
		"Test Single Sync",
		source_doc=source,
		operation="uPdAtE",
		target_document_name="T-1",
		queue_on_insert=False,
	)
	assert job.operation == "Update"
	assert job.title == "Sync Test Source > Sync Test Target: T-1"


def test_trigger_document_fills_type_name_and_timestamp():
	source = make_source()
	job = create_sync_job(
		"Test Single Sync", source_doc=source, triggered_by_doc=source, trigger_type="Document Hook"
	)
	assert job.triggered_by_document_name == source.name
	assert str(job.trigger_document_timestamp)[:19] == str(source.modified)[:19]


def test_context_only_jobs_need_a_context():
	job = create_sync_job("Test Bypass Sync", context={"title": "ctx"})
	assert job.get_context() == {"title": "ctx"}
	with pytest.raises(InvalidSyncJobRequest):
		create_sync_job("Test Bypass Sync")


@pytest.mark.parametrize(
	"params,error",
	[
		({"sync_job_type": "No Such Type", "context": {}}, SyncJobError),
		({"sync_job_type": "Test Single Sync", "operation": "upsert", "context": {}}, InvalidSyncJobRequest),
		({"sync_job_type": "Test Single Sync", "context": "[1]"}, InvalidSyncJobRequest),
		(
			{"sync_job_type": "Test Single Sync", "context": {}, "queue": "no-such-queue"},
			InvalidSyncJobRequest,
		),
		({"sync_job_type": "Test Single Sync", "context": {}, "timeout": -5}, InvalidSyncJobRequest),
	],
)
def test_bad_input_raises_a_validation_error_and_writes_nothing(params, error):
	before = frappe.db.count("Sync Job")
	with pytest.raises(error):
		create_sync_job(params)
	assert issubclass(error, frappe.ValidationError)
	assert frappe.db.count("Sync Job") == before


def test_queue_on_insert_default_follows_developer_mode_and_site_config():
	source = make_source()
	assert create_sync_job("Test Single Sync", source_doc=source).status == "Pending"  # developer mode
	frappe.conf.sync_job_queue_on_insert = 1
	try:
		assert create_sync_job("Test Single Sync", source_doc=source).status == "Waiting"
	finally:
		frappe.conf.pop("sync_job_queue_on_insert")
	frappe.conf.developer_mode = 0
	try:
		assert create_sync_job("Test Single Sync", source_doc=make_source()).status == "Waiting"
	finally:
		frappe.conf.developer_mode = 1


def test_enqueue_pushes_to_rq_only_after_commit():
	source = make_source()
	job = enqueue_sync_job("Test Single Sync", source_doc=source)
	assert (job.status, job.job_id) == ("Waiting", None)
	assert get_queue("default").count == 0, "nothing may reach RQ before the caller commits"
	frappe.db.commit()
	job_id = frappe.db.get_value("Sync Job", job.name, "job_id")
	assert job_id and get_job(job_id) is not None, "pushed to RQ once the caller committed"


def test_enqueue_then_rollback_leaves_no_job_and_runs_nothing():
	source = make_source()
	name = enqueue_sync_job("Test Single Sync", source_doc=source).name
	frappe.db.rollback()
	frappe.db.commit()
	assert not frappe.db.exists("Sync Job", name)
	assert get_queue("default").count == 0
	assert run_queued() == []


def test_enqueue_never_commits_the_callers_transaction():
	source = make_source()
	frappe.db.set_value("Sync Test Source", source.name, "title", "uncommitted")
	enqueue_sync_job("Test Single Sync", source_doc=source)
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Test Source", source.name, "title") != "uncommitted"


def test_identical_jobs_coalesce_keeping_the_newest_trigger():
	set_type("Test Single Sync", coalesce_duplicates=1)
	source, other = make_source(), make_source()
	first = enqueue_sync_job(
		"Test Single Sync", source_doc=source, trigger_type="Document Hook", triggered_by_doc=source
	)
	second = enqueue_sync_job(
		"Test Single Sync", source_doc=source, trigger_type="Webhook", triggered_by_doc=other
	)
	assert second.name == first.name
	second.reload()
	assert second.coalesced_count == 1
	assert (second.trigger_type, second.triggered_by_document_name) == ("Webhook", other.name)
	different = enqueue_sync_job("Test Single Sync", source_doc=source, context={"x": 1})
	assert different.name != first.name


def test_no_coalescing_when_the_type_disables_it():
	source = make_source()
	first = enqueue_sync_job("Test Single Sync", source_doc=source)
	assert enqueue_sync_job("Test Single Sync", source_doc=source).name != first.name


def test_bulk_enqueue_creates_waiting_jobs_in_order():
	sources = [make_source().name for _ in range(30)]
	names = enqueue_sync_jobs("Test Single Sync", sources, trigger_type="Scheduler")
	assert len(set(names)) == 30
	rows = frappe.get_all(
		"Sync Job",
		filters={"name": ["in", names]},
		fields=["name", "status", "title", "concurrency_key"],
		order_by="creation asc",
	)
	assert [row.name for row in rows] == names
	assert {row.status for row in rows} == {"Waiting"}
	frappe.db.commit()
	assert len(run_queued()) == 30
	assert frappe.db.count("Sync Test Target") == 30
