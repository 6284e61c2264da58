"""`frappe.modules`: module path helpers."""

import frappe
from frappe import get_module_path, scrub  # noqa: F401


def get_doctype_module(doctype):
	return frappe.get_meta(doctype).module


def load_doctype_module(doctype, module=None, prefix="", suffix=""):
	from frappe.model.meta import load_doctype_module as _load

	return _load(doctype)
