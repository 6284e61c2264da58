"""Plain, JSON-safe snapshots of documents, the input of diffs and the stored before/after data."""

import datetime
import decimal
import json

import frappe
from frappe.utils import cint, flt

# bookkeeping that changes on every save and says nothing about the data
IGNORED_FIELDS = frozenset(
	{
		"name",
		"owner",
		"creation",
		"modified",
		"modified_by",
		"idx",
		"docstatus",
		"parent",
		"parentfield",
		"parenttype",
		"doctype",
		"_user_tags",
		"_comments",
		"_assign",
		"_liked_by",
		"_seen",
	}
)
NO_VALUE_TYPES = frozenset(
	{"Section Break", "Column Break", "Tab Break", "HTML", "Button", "Fold", "Heading"}
)
INT_TYPES = frozenset({"Int", "Check"})
FLOAT_TYPES = frozenset({"Float", "Currency", "Percent", "Duration"})


def snapshot(doc) -> dict:
	"""`{"fields": {...}, "tables": {table: [row, ...]}}` of `doc`, values normalised by field type."""
	fields, tables = {}, {}
	for df in doc.meta.fields:
		if df.fieldtype in NO_VALUE_TYPES or df.fieldname in IGNORED_FIELDS:
			continue
		if df.fieldtype in frappe.model.table_fields:
			tables[df.fieldname] = [_row(row) for row in doc.get(df.fieldname) or []]
		else:
			fields[df.fieldname] = normalise(doc.get(df.fieldname), df.fieldtype)
	return {"fields": fields, "tables": tables}


def to_json(snap: dict | None) -> str | None:
	return None if snap is None else json.dumps(snap, indent=1, sort_keys=True, default=str)


def normalise(value, fieldtype: str | None = None):
	"""A value as it reads in JSON: dates as ISO strings, numbers by field type, empty text as None."""
	if fieldtype in INT_TYPES:
		return cint(value) if value not in (None, "") else (0 if fieldtype == "Check" else None)
	if fieldtype in FLOAT_TYPES:
		return flt(value) if value not in (None, "") else None
	if fieldtype == "Date" and value:
		return str(frappe.utils.getdate(value))
	if fieldtype == "Datetime" and value:
		return frappe.utils.get_datetime_str(frappe.utils.get_datetime(value))
	if isinstance(value, datetime.datetime):
		return frappe.utils.get_datetime_str(value)
	if isinstance(value, datetime.date | datetime.time):
		return value.isoformat()
	if isinstance(value, datetime.timedelta):
		return value.total_seconds()
	if isinstance(value, decimal.Decimal):
		return float(value)
	if value == "":
		return None
	return value


def _row(row) -> dict:
	values = {"name": row.name if not row.get("__islocal") else None, "idx": row.idx}
	for df in row.meta.fields:
		if df.fieldtype not in NO_VALUE_TYPES and df.fieldname not in IGNORED_FIELDS:
			values[df.fieldname] = normalise(row.get(df.fieldname), df.fieldtype)
	return values
