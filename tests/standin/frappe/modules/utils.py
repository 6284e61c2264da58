"""`frappe.modules.utils` subset."""

import os

import frappe
from frappe import scrub


def get_module_app(module):
	app = frappe.local.module_app.get(scrub(module))
	if app is None:
		frappe.throw(frappe._("Module {} not found").format(module), exc=frappe.DoesNotExistError)
	return app


def scrub_dt_dn(dt, dn):
	return scrub(dt), scrub(dn)


def export_module_json(doc, is_standard, module):
	"""Export a standard record in developer mode; returns the path without extension."""
	if not frappe.flags.in_import and is_standard and frappe.conf.developer_mode:
		from frappe.modules.export_file import export_to_files

		export_to_files(record_list=[[doc.doctype, doc.name]], record_module=module, create_init=is_standard)
		return os.path.join(
			frappe.get_module_path(module), scrub(doc.doctype), scrub(doc.name), scrub(doc.name)
		)
