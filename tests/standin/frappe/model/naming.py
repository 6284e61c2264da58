"""Document naming rules of `frappe.model.naming` (hash, field:, prompt, controller autoname)."""

import base64
import re
import secrets
import time

import frappe
from frappe import _


def _get_timestamp_prefix():
	ts = int(time.time() * 10) % (32**4)
	return base64.b32hexencode(ts.to_bytes(length=5, byteorder="big")).decode()[-4:].lower()


def _generate_random_string(length=10):
	return base64.b32hexencode(secrets.token_bytes(length)).decode()[:length].lower()


def make_autoname(key="", doctype="", doc="", *, ignore_validate=False):
	"""`hash`: a 10-character name, time prefix then random (the stand-in has no naming series)."""
	if key != "hash":
		raise NotImplementedError(f"stand-in naming supports hash, field: and prompt, not {key!r}")
	return _get_timestamp_prefix() + _generate_random_string(6)


def set_new_name(doc):
	"""Name a new document following Frappe 15's order of rules."""
	doc.run_method("before_naming")
	meta = frappe.get_meta(doc.doctype)
	autoname = meta.autoname or ""
	if autoname.lower() != "prompt" and not frappe.flags.in_import:
		doc.name = None
	if meta.issingle:
		doc.name = doc.doctype
	if not doc.name:
		doc.run_method("autoname")
	if not doc.name and autoname:
		set_name_from_naming_options(autoname, doc)
	if not doc.name:
		doc.name = make_autoname("hash", doc.doctype)
	doc.name = validate_name(doc.doctype, doc.name)


def set_name_from_naming_options(autoname, doc):
	_autoname = autoname.lower()
	if _autoname.startswith("field:"):
		fieldname = autoname[6:]
		doc.name = (doc.get(fieldname) or "").strip()
		if not doc.name:
			frappe.throw(_("{0} is required").format(doc.meta.get_label(fieldname)))
	elif _autoname.startswith("prompt"):
		if not doc.name:
			frappe.throw(_("Please set the document name"))
	elif _autoname.startswith(("naming_series:", "format:")) or "#" in autoname:
		make_autoname(autoname, doc=doc)


def validate_name(doctype, name):
	if not name:
		frappe.throw(_("No Name Specified for {0}").format(doctype))
	if isinstance(name, int):
		frappe.throw(_("Invalid name type (integer) for varchar name column"), frappe.NameError)
	if name.startswith("New " + doctype):
		frappe.throw(
			_("There were some errors setting the name, please contact the administrator"), frappe.NameError
		)
	name = name.strip()
	if not frappe.get_meta(doctype).get("issingle") and (doctype == name) and (name != "DocType"):
		frappe.throw(_("Name of {0} cannot be {1}").format(doctype, name), frappe.NameError)
	if re.findall("[<>]+", name):
		frappe.throw(
			_("Name cannot contain special characters like {0}").format("'<', '>'"), frappe.NameError
		)
	return name
