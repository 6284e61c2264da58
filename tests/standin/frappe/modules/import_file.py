"""`frappe.modules.import_file`: import record JSON files (replace when forced, missing or newer)."""

import json
import os

import frappe
from frappe.utils import get_datetime


def read_doc_from_file(path):
	if not os.path.exists(path):
		raise OSError(f"{path} missing")
	with open(path) as f:
		return json.loads(f.read())


def import_file_by_path(
	path, force=False, data_import=False, pre_process=None, ignore_version=None, reset_permissions=False
):
	"""Import unless the database copy is at least as new as the file's `modified`."""
	try:
		docs = read_doc_from_file(path)
	except OSError:
		print(f"{path} missing")
		return
	if docs:
		if not isinstance(docs, list):
			docs = [docs]
		for doc in docs:
			db_modified = frappe.db.get_value(doc["doctype"], doc["name"], "modified")
			is_db_timestamp_latest = db_modified and (
				get_datetime(doc.get("modified")) <= get_datetime(db_modified)
			)
			if not force and db_modified and is_db_timestamp_latest:
				continue
			import_doc(
				doc,
				data_import=data_import,
				pre_process=pre_process,
				ignore_version=ignore_version,
				reset_permissions=reset_permissions,
				path=path,
			)
			if doc.get("modified"):
				frappe.db.sql(
					f"update `tab{doc['doctype']}` set modified = %s where name = %s",
					(get_datetime(doc["modified"]), doc["name"]),
				)
	return True


def import_doc(
	docdict, data_import=False, pre_process=None, ignore_version=None, reset_permissions=False, path=None
):
	"""Delete the old copy (for_reload: no on_trash, no Deleted Document) and insert without validate."""
	frappe.flags.in_import = True
	docdict["__islocal"] = 1
	from frappe.model.document import get_controller

	controller = get_controller(docdict["doctype"])
	if hasattr(controller, "prepare_for_import") and callable(controller.prepare_for_import):
		controller.prepare_for_import(docdict)
	doc = frappe.get_doc(docdict)
	doc.run_method("before_import")
	doc.flags.ignore_version = ignore_version
	if pre_process:
		pre_process(doc)
	if frappe.db.exists(doc.doctype, doc.name):
		frappe.delete_doc(doc.doctype, doc.name, force=1, for_reload=True)
	doc.flags.ignore_links = True
	if not data_import:
		doc.flags.ignore_validate = True
		doc.flags.ignore_permissions = True
		doc.flags.ignore_mandatory = True
	doc.insert()
	frappe.flags.in_import = False
	return doc
