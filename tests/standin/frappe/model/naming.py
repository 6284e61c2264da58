"""Document naming rules of `frappe.model.naming` (hash, field:, prompt, series, controller autoname)."""

import base64
import re
import secrets
import time

import frappe
from frappe import _
from frappe.utils import cint, now_datetime


def _get_timestamp_prefix():
	ts = int(time.time() * 10) % (32**4)
	return base64.b32hexencode(ts.to_bytes(length=5, byteorder="big")).decode()[-4:].lower()


def _generate_random_string(length=10):
	return base64.b32hexencode(secrets.token_bytes(length)).decode()[:length].lower()


def make_autoname(key="", doctype="", doc="", *, ignore_validate=False):
	"""`hash` -> 10-char time-prefixed random name; `PREFIX.####` -> next number of the series."""
	if key == "hash":
		return _get_timestamp_prefix() + _generate_random_string(6)
	parts = key.split(".")
	name = ""
	series_digits = None
	prefix = ""
	today = now_datetime()
	for part in parts:
		if part.startswith("#"):
			series_digits = len(part)
			prefix = name
			name += "{series}"
		elif part == "YY":
			name += today.strftime("%y")
		elif part == "YYYY":
			name += today.strftime("%Y")
		elif part == "MM":
			name += today.strftime("%m")
		elif part == "DD":
			name += today.strftime("%d")
		elif doc and part.startswith("{") and part.endswith("}"):
			name += str(doc.get(part[1:-1]) or "")
		else:
			name += part
	if series_digits is None:
		return name
	current = getseries(prefix)
	return name.replace("{series}", str(current).zfill(series_digits))


def getseries(key):
	"""Increment and return the counter of a naming series, stored in `tabSeries`."""
	row = frappe.db.sql("select `current` from `tabSeries` where `name` = %s for update", (key,))
	if row:
		current = cint(row[0][0]) + 1
		frappe.db.sql("update `tabSeries` set `current` = %s where `name` = %s", (current, key))
	else:
		current = 1
		frappe.db.sql("insert into `tabSeries` (`name`, `current`) values (%s, 1)", (key,))
	return current


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
	elif _autoname.startswith("naming_series:"):
		doc.name = make_autoname(doc.get("naming_series") + ".#####", doc=doc)
	elif _autoname.startswith("prompt"):
		if not doc.name:
			frappe.throw(_("Please set the document name"))
	elif _autoname.startswith("format:"):
		fmt = autoname[7:]
		doc.name = make_autoname(
			re.sub(r"\{(#+)\}", lambda m: "." + m.group(1) + ".", fmt).strip("."), doc=doc
		)
	elif "#" in autoname:
		doc.name = make_autoname(autoname, doc=doc)


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
