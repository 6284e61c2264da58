"""Sync Job Type rules, controller generation and the shipped standard types."""

import os
import shutil

import frappe
import pytest

from sync_tweaks import controller
from sync_tweaks.exceptions import SyncControllerError, SyncJobError
from sync_tweaks.install import sync_standard_sync_job_types
from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import render_controller
from sync_tweaks.utils.sync_job import create_sync_job
from tests.utils import make_source, set_type


def new_type(name, **fields):
	return frappe.get_doc(
		{
			"doctype": "Sync Job Type",
			"sync_job_type_name": name,
			"source_document_type": "Sync Test Source",
			"target_document_type": "Sync Test Target",
			**fields,
		}
	)


@pytest.fixture
def generated():
	"""Remove controller folders the test generates in the fixture app, and their records."""
	created = []
	yield created
	frappe.db.rollback()
	for name in created:
		frappe.db.delete("Sync Job Type", {"name": name})
		folder = frappe.get_module_path("Sync Tweaks Tests", "sync_job_type", frappe.scrub(name))
		shutil.rmtree(folder, ignore_errors=True)
	frappe.db.commit()


def test_shipped_standard_types_are_imported_on_install():
	for name in ("Test Single Sync", "Test Multi Sync", "Test Bypass Sync"):
		job_type = frappe.get_doc("Sync Job Type", name)
		assert job_type.is_standard == "Yes" and job_type.module == "Sync Tweaks Tests"


def test_migrate_reimports_changed_standard_types():
	frappe.db.set_value(
		"Sync Job Type",
		"Test Single Sync",
		{"max_retries": 9, "modified": "2020-01-01 00:00:00"},
		update_modified=False,
	)
	paths = sync_standard_sync_job_types(["sync_tweaks_tests"])
	assert any(path.endswith("test_single_sync.json") for path in paths)
	assert frappe.db.get_value("Sync Job Type", "Test Single Sync", "max_retries") == 2


def test_module_defaults_to_the_source_doctypes_module(generated):
	frappe.conf.developer_mode = 0
	try:
		doc = new_type("Module Default Type").insert()
		generated.append(doc.name)
	finally:
		frappe.conf.developer_mode = 1
	assert doc.module == "Sync Tweaks Tests"
	assert doc.is_standard == "No"


def test_administrator_in_developer_mode_generates_the_controller(generated):
	generated.append("Generated Type")
	doc = new_type("Generated Type", is_standard=None).insert()
	assert doc.is_standard == "Yes"
	path = controller.file_path(doc)
	assert os.path.exists(path)
	assert os.path.exists(os.path.join(os.path.dirname(path), "__init__.py"))
	assert os.path.exists(path[: -len(".py")] + ".json")
	source = open(path).read()
	compile(source, path, "exec")
	assert "def get_target_document(sync_job, source_doc)" in source
	module, shape = controller.load(doc)
	assert shape.value == "Single Target"


def test_an_existing_controller_is_never_overwritten(generated):
	generated.append("Kept Controller")
	doc = new_type("Kept Controller", is_standard="Yes").insert()
	path = controller.file_path(doc)
	with open(path, "w") as f:
		f.write("# mine\n")
	doc.timeout = 120
	doc.save()
	assert open(path).read() == "# mine\n"


def test_only_administrator_in_developer_mode_makes_standard_types(generated):
	frappe.conf.developer_mode = 0
	try:
		with pytest.raises(frappe.PermissionError):
			new_type("Not Allowed Standard", is_standard="Yes").insert()
	finally:
		frappe.conf.developer_mode = 1
	assert not frappe.db.exists("Sync Job Type", "Not Allowed Standard")


def test_standard_types_are_read_only_outside_developer_mode_but_can_be_disabled():
	frappe.conf.developer_mode = 0
	try:
		doc = frappe.get_doc("Sync Job Type", "Test Single Sync")
		doc.timeout = 999
		with pytest.raises(frappe.PermissionError):
			doc.save()
		doc.reload()
		doc.disabled = 1
		doc.save()
	finally:
		frappe.conf.developer_mode = 1
		frappe.db.rollback()


def test_a_non_standard_type_cannot_take_a_standard_types_controller():
	frappe.conf.developer_mode = 0
	try:
		with pytest.raises(frappe.DuplicateEntryError):
			new_type("Test-Single Sync", module="Sync Tweaks Tests", is_standard="No").insert()
	finally:
		frappe.conf.developer_mode = 1
		frappe.db.rollback()


def test_disabled_types_refuse_new_jobs():
	source = make_source()
	set_type("Test Single Sync", disabled=1)
	with pytest.raises(SyncJobError, match="disabled"):
		create_sync_job("Test Single Sync", source_doc=source)


def test_explicit_controller_must_be_inside_an_installed_app(generated):
	generated.append("Explicit Controller")
	with pytest.raises(SyncControllerError):
		new_type("Explicit Controller", controller="os.path").insert()
	with pytest.raises(SyncControllerError):
		new_type("Explicit Controller", controller="sync_tweaks_tests.nothing_here").insert()
	doc = new_type(
		"Explicit Controller",
		is_standard="No",
		controller="sync_tweaks_tests.sync_tweaks_tests.sync_job_type.test_bypass_sync.test_bypass_sync",
	).insert()
	assert controller.load(doc)[1].value == "Bypass"


def test_only_system_managers_set_the_controller_path(generated):
	from tests.test_security import as_user

	generated.append("Controller By Tester")
	with as_user("sync-tester@example.com", roles=["Sync Tester"]):
		doc = new_type("Controller By Tester", controller="sync_tweaks_tests.recorder")
		doc.flags.ignore_permissions = True
		with pytest.raises(frappe.PermissionError):
			doc.insert()


def test_incomplete_controller_warns_on_save_and_fails_at_run_time():
	frappe.local.message_log = []
	doc = frappe.get_doc("Sync Job Type", "Test Broken Sync")
	doc.warn_incomplete_controller()
	assert any("not a valid sync controller" in str(m) for m in frappe.local.message_log)
	with pytest.raises(SyncControllerError):
		controller.load(doc)


def test_missing_controller_is_reported_to_the_form(generated):
	generated.append("No Controller Yet")
	frappe.conf.developer_mode = 0
	try:
		doc = new_type("No Controller Yet").insert()
	finally:
		frappe.conf.developer_mode = 1
	doc.run_method("onload")
	assert doc.get_onload()["controller_exists"] is False
	with pytest.raises(SyncControllerError, match="not found"):
		controller.load(doc)


def test_boilerplate_renders_to_valid_python():
	doc = frappe._dict(name="Any Type", source_document_type="ToDo", target_document_type="Note")
	source = render_controller(doc)
	compile(source, "controller.py", "exec")
	for hook in (
		"execute(",
		"get_multiple_target_documents(",
		"before_relay(",
		"after_relay(",
		"before_sync(",
		"after_sync(",
		"finished(",
	):
		assert hook in source


def test_unknown_queue_is_refused():
	doc = frappe.get_doc("Sync Job Type", "Test Single Sync")
	doc.queue = "nope"
	with pytest.raises(SyncJobError, match="Queue"):
		doc.save()
	frappe.db.rollback()
