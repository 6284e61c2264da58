"""DocType metadata loaded from DocType JSON files (core_doctypes + installed apps)."""

import glob
import json
import os

import frappe
from frappe.model import data_fieldtypes, default_fields, table_fields

CORE_DOCTYPES_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "core_doctypes")
_meta_cache = {}
_paths_cache = {}


def doctype_json_paths():
	"""Map DocType name -> JSON path for core doctypes and every installed app's modules."""
	apps = tuple(frappe.get_installed_apps())
	if apps in _paths_cache:
		return _paths_cache[apps]
	paths = {}
	patterns = [os.path.join(CORE_DOCTYPES_PATH, "*", "*.json")]
	for app in apps:
		if app == "frappe":
			continue
		for module in frappe.get_module_list(app):
			patterns.append(
				os.path.join(frappe.get_app_path(app, frappe.scrub(module)), "doctype", "*", "*.json")
			)
	for pattern in patterns:
		for path in sorted(glob.glob(pattern)):
			if os.path.basename(os.path.dirname(path)) + ".json" != os.path.basename(path):
				continue
			with open(path) as f:
				doc = json.load(f)
			if doc.get("doctype") == "DocType":
				paths[doc["name"]] = path
	_paths_cache[apps] = paths
	return paths


def clear_meta_cache():
	_meta_cache.clear()
	_paths_cache.clear()


def get_meta(doctype, cached=True):
	if cached and doctype in _meta_cache:
		return _meta_cache[doctype]
	path = doctype_json_paths().get(doctype)
	if not path:
		frappe.throw(frappe._("DocType {0} not found").format(doctype), frappe.DoesNotExistError)
	with open(path) as f:
		meta = Meta(json.load(f))
	_meta_cache[doctype] = meta
	return meta


class Meta(frappe._dict):
	"""The subset of frappe.model.meta.Meta used by documents and queries."""

	def __init__(self, d):
		super().__init__(d)
		self.fields = [frappe._dict(f, parent=self.name) for f in d.get("fields", [])]
		self.permissions = [frappe._dict(p) for p in d.get("permissions", [])]
		for key in (
			"istable",
			"issingle",
			"is_virtual",
			"custom",
			"track_changes",
			"is_submittable",
			"read_only",
		):
			self[key] = int(d.get(key) or 0)
		self._fields = {f.fieldname: f for f in self.fields}

	def get(self, key, filters=None, limit=None, default=None):
		value = super().get(key, default)
		if filters and isinstance(value, list):
			from frappe.model.document import filter_rows

			return filter_rows(value, filters, limit)
		return value

	def get_field(self, fieldname):
		return self._fields.get(fieldname)

	def get_label(self, fieldname):
		df = self.get_field(fieldname)
		return df.get("label") if df else {"name": "ID", "owner": "Created By"}.get(fieldname, fieldname)

	def get_table_fields(self):
		return [df for df in self.fields if df.fieldtype in table_fields]

	def get_link_fields(self):
		return [df for df in self.fields if df.fieldtype == "Link" and df.options != "[Select]"]

	def get_dynamic_link_fields(self):
		return [df for df in self.fields if df.fieldtype == "Dynamic Link"]

	def get_select_fields(self):
		return [
			df
			for df in self.fields
			if df.fieldtype == "Select" and df.options not in ("[Select]", "[Select Party]")
		]

	def get_valid_columns(self):
		cols = list(default_fields)[1:] + [
			df.fieldname for df in self.fields if df.fieldtype in data_fieldtypes
		]
		if self.istable:
			cols += ["parent", "parentfield", "parenttype"]
		return cols
