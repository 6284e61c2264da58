"""`frappe.modules`: module path helpers."""

import frappe
from frappe import get_module_path, scrub  # noqa: F401


def load_doctype_module(doctype, module=None, prefix="", suffix=""):
	"""The controller module `{app}.{module}.doctype.{dt}.{dt}` of an app's DocType."""
	module = scrub(module or frappe.get_meta(doctype).module)
	app = frappe.local.module_app[module]
	return frappe.get_module(f"{app}.{module}.doctype.{scrub(doctype)}.{prefix}{scrub(doctype)}{suffix}")
