"""Every endpoint, called the way a request calls it, as Guest, as a desk user and as a System Manager."""

import contextlib

import frappe
import pytest
from frappe.handler import execute_cmd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_tweaks.utils.sync_job import create_sync_job
from tests.utils import make_source

ENQUEUE = "sync_tweaks.utils.sync_job.enqueue"
GET_STATUS = "sync_tweaks.utils.sync_job.get_status"
CLEAR_ALL = "sync_tweaks.sync_tweaks.doctype.sync_job.sync_job.clear_all_logs"
BULK = "sync_tweaks.sync_tweaks.doctype.sync_job.sync_job.bulk_action"
CONTROLLER_STATUS = "sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type.get_controller_status"
DOCTOR = "sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type.get_doctor_findings"
CHART = "sync_tweaks.stats.jobs_per_status_chart"
LINEAGE = "sync_tweaks.lineage.get_lineage"
GROUP_ACTION = "sync_tweaks.failures.group_action"
CHILDREN = "sync_tweaks.sync_tweaks.doctype.sync_job.sync_job.get_children_progress"
CREATE_BACKFILL = "sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill.create_backfill"
ENDPOINTS = (
	ENQUEUE,
	GET_STATUS,
	CLEAR_ALL,
	BULK,
	CONTROLLER_STATUS,
	DOCTOR,
	CHART,
	LINEAGE,
	GROUP_ACTION,
	CHILDREN,
	CREATE_BACKFILL,
)
DOC_METHODS = ("start", "cancel_sync", "retry", "resolve", "dry_run_again")
TYPE_METHODS = ("pause", "resume")
BACKFILL_METHODS = (
	"start_backfill",
	"cancel_backfill",
	"resume_backfill",
	"apply_backfill",
	"refresh_rollup",
)
ANCHOR_SYSTEM_MANAGER = "sync-tweaks-system-manager@example.com"


@contextlib.contextmanager
def as_user(email: str, roles: list[str] | None = None):
	"""Act as a (created on demand) System User with exactly `roles`."""
	if email not in ("Guest", "Administrator"):
		if email != ANCHOR_SYSTEM_MANAGER and "System Manager" not in (roles or []):
			# Frappe 15.29 makes a new desk user System Manager when no other one exists
			with as_user(ANCHOR_SYSTEM_MANAGER, ["System Manager"]):
				pass
		if not frappe.db.exists("User", email):
			frappe.get_doc(
				{
					"doctype": "User",
					"email": email,
					"first_name": email.split("@")[0],
					"send_welcome_email": 0,
				}
			).insert(ignore_permissions=True)
		user = frappe.get_doc("User", email)
		user.enabled = 1  # a test may have disabled it (on a real site users outlive the run)
		user.set("roles", [{"role": role} for role in roles or []])
		user.flags.ignore_permissions = True
		user.save()
		frappe.db.commit()
	frappe.set_user(email)
	try:
		yield
	finally:
		frappe.set_user("Administrator")


def call(cmd: str, **args):
	"""Run a whitelisted method through Frappe's request handler, as a POST."""
	frappe.local.request = frappe._dict(method="POST")
	frappe.local.form_dict = frappe._dict(args)
	try:
		return execute_cmd(cmd)
	finally:
		frappe.local.request = None
		frappe.local.form_dict = frappe._dict()


def call_doc_method(doc, method: str, **args):
	from frappe.handler import run_doc_method

	frappe.local.request = frappe._dict(method="POST")
	frappe.local.form_dict = frappe._dict()
	frappe.response = frappe.local.response = frappe._dict({"docs": []})
	try:
		run_doc_method(method, dt=doc.doctype, dn=doc.name, args=frappe.as_json(args) if args else None)
	finally:
		frappe.local.request = None


def jobs():
	return frappe.db.count("Sync Job")


@pytest.fixture
def job():
	doc = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	return doc


def endpoint_args(cmd: str, job) -> dict:
	return {
		ENQUEUE: {"sync_job_type": "Test Single Sync", "source_document_name": job.source_document_name},
		GET_STATUS: {"name": job.name},
		CLEAR_ALL: {},
		BULK: {"action": "cancel", "names": [job.name]},
		CONTROLLER_STATUS: {"sync_job_type": "Test Single Sync"},
		DOCTOR: {"sync_job_type": "Test Single Sync"},
		CHART: {},
		LINEAGE: {"doctype": "Sync Test Source", "name": job.source_document_name},
		GROUP_ACTION: {"action": "cancel", "signature": ""},
		CHILDREN: {"name": job.name},
		CREATE_BACKFILL: {"sync_job_type": "Test Single Sync"},
	}[cmd]


def test_every_whitelisted_function_is_listed_here_and_in_the_readme():
	import importlib
	import inspect
	import pkgutil

	import sync_tweaks

	found = set()
	for module_info in pkgutil.walk_packages(sync_tweaks.__path__, "sync_tweaks."):
		if ".boilerplate" in module_info.name or module_info.name.endswith(".commands"):
			continue
		module = importlib.import_module(module_info.name)
		for name, value in vars(module).items():
			if (
				inspect.isfunction(value)
				and value.__module__ == module.__name__
				and value in frappe.whitelisted
			):
				found.add(f"{module.__name__}.{name}")
			if inspect.isclass(value) and value.__module__ == module.__name__:
				found.update(
					f"{value.__name__}.{attr}" for attr, fn in vars(value).items() if fn in frappe.whitelisted
				)
	assert found == set(ENDPOINTS) | {f"SyncJob.{m}" for m in DOC_METHODS} | {
		f"SyncJobType.{m}" for m in TYPE_METHODS
	} | {f"SyncBackfill.{m}" for m in BACKFILL_METHODS}
	readme = open(__file__.rsplit("/tests/", 1)[0] + "/README.md").read()
	for endpoint in (*ENDPOINTS, *DOC_METHODS, *TYPE_METHODS, *BACKFILL_METHODS):
		assert endpoint.rsplit(".", 1)[-1] in readme, endpoint


@pytest.mark.parametrize("cmd", ENDPOINTS)
def test_guest_gets_nothing(cmd, job):
	before = jobs()
	with as_user("Guest"), pytest.raises(frappe.PermissionError):
		call(cmd, **endpoint_args(cmd, job))
	assert jobs() == before
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Pending"


def test_desk_user_without_roles_cannot_enqueue_or_act(job):
	before = jobs()
	with as_user("plain@example.com", []):
		with pytest.raises(frappe.PermissionError):
			call(ENQUEUE, sync_job_type="Test Single Sync", source_document_name=job.source_document_name)
		with pytest.raises(frappe.PermissionError):
			call(CLEAR_ALL)
		for method in DOC_METHODS:
			with pytest.raises(frappe.PermissionError):
				call_doc_method(job, method)
		for cmd in (GET_STATUS, CONTROLLER_STATUS, DOCTOR, CHART, LINEAGE, GROUP_ACTION, CHILDREN):
			with pytest.raises(frappe.PermissionError):
				call(cmd, **endpoint_args(cmd, job))
		for method in TYPE_METHODS:
			with pytest.raises(frappe.PermissionError):
				call_doc_method(frappe.get_doc("Sync Job Type", "Test Single Sync"), method)
		result = call(BULK, action="cancel", names=[job.name])
		assert job.name in result["failed"]
	assert jobs() == before
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Pending"


def test_enqueue_needs_read_permission_on_the_source(job):
	before = jobs()
	with as_user("sm@example.com", ["System Manager"]):
		with pytest.raises(frappe.PermissionError):
			call(ENQUEUE, sync_job_type="Test Single Sync", source_document_name=job.source_document_name)
	assert jobs() == before
	with as_user("sm-tester@example.com", ["System Manager", "Sync Tester"]):
		result = call(
			ENQUEUE, sync_job_type="Test Single Sync", source_document_name=job.source_document_name
		)
	assert frappe.db.get_value("Sync Job", result["name"], "source_document_name") == job.source_document_name


def test_document_objects_are_not_accepted_from_requests(job):
	with as_user("sm-tester@example.com", ["System Manager", "Sync Tester"]):
		result = call(
			ENQUEUE,
			sync_job_type="Test Single Sync",
			source_document_name=job.source_document_name,
			source_doc={"doctype": "User", "name": "Administrator"},
		)
	assert frappe.db.get_value("Sync Job", result["name"], "source_document_type") == "Sync Test Source"


def test_forced_operations_need_the_callers_permission_on_the_target():
	from sync_tweaks.utils.sync_job import check_target_permission

	with as_user("plain@example.com", []):
		for operation in ("Insert", "Update", "Delete"):
			with pytest.raises(frappe.PermissionError):
				check_target_permission("Sync Test Target", operation, "any-target")
		check_target_permission("Sync Test Target", "", None)
	with as_user("sm@example.com", ["System Manager"]):
		check_target_permission("Sync Test Target", "Delete", None)


def test_system_manager_doc_methods_and_clear_all_logs(job):
	with as_user("sm@example.com", ["System Manager"]):
		call_doc_method(job, "cancel_sync", reason="no longer needed")
		assert frappe.db.get_value("Sync Job", job.name, "status") == "Canceled"
		assert call(CONTROLLER_STATUS, sync_job_type="Test Single Sync")["exists"] is True
		call(CLEAR_ALL)
	assert jobs() == 0


PARAMETERS = {
	"operation": st.one_of(
		st.none(), st.sampled_from(["insert", "UPDATE", "Delete", "upsert", "", "x" * 200])
	),
	"context": st.one_of(
		st.none(),
		st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
		st.text(max_size=10),
		st.lists(st.integers(), max_size=2),
	),
	"timeout": st.one_of(st.none(), st.integers(-5, 10**7), st.text(max_size=3)),
	"retry_delay": st.one_of(st.none(), st.integers(-5, 10**6)),
	"max_retries": st.one_of(st.none(), st.integers(-5, 5000)),
	"queue": st.one_of(st.none(), st.sampled_from(["default", "short", "nope", ""])),
	"trigger_type": st.one_of(st.none(), st.sampled_from(["Manual", "API", "Cron"])),
	"dry_run": st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, "1", "yes"])),
	"source_document_name": st.one_of(st.none(), st.just("existing"), st.text(max_size=8)),
}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.fixed_dictionaries({}, optional=PARAMETERS))
def test_random_parameters_give_a_clean_error_or_a_well_formed_job(params):
	frappe.db.rollback()
	if params.get("source_document_name") == "existing":
		params["source_document_name"] = (
			frappe.get_all("Sync Test Source", pluck="name", limit=1) or [make_source().name]
		)[0]
	before = frappe.db.count("Sync Job")
	try:
		job = create_sync_job("Test Single Sync", **params)
	except frappe.ValidationError:
		assert frappe.db.count("Sync Job") == before
		return
	finally:
		frappe.local.message_log = []
	assert job.status in ("Pending", "Waiting")
	assert job.operation in ("", "Insert", "Update", "Delete")
	assert job.timeout > 0 and job.retry_delay >= 0 and job.max_retries >= 0
	assert job.source_document_name or job.get_context() is not None
	assert len(job.title) <= 140
	frappe.db.rollback()
