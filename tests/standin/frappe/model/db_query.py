"""`frappe.get_list`/`get_all` query engine (db_query semantics: ifnull fallbacks, default order)."""

import frappe
from frappe import _
from frappe.database import DefaultOrderBy, get_table_name

AGGREGATES = ("count(", "min(", "max(", "sum(", "avg(")


class DatabaseQuery:
	def __init__(self, doctype, user=None):
		self.doctype = doctype
		self.user = user or frappe.session.user

	def execute(
		self,
		fields=None,
		filters=None,
		or_filters=None,
		docstatus=None,
		group_by=None,
		order_by=DefaultOrderBy,
		limit_start=False,
		limit_page_length=None,
		as_list=False,
		with_childnames=False,
		debug=False,
		ignore_permissions=False,
		user=None,
		with_comment_count=False,
		join="left join",
		distinct=False,
		start=None,
		page_length=None,
		limit=None,
		ignore_ifnull=False,
		save_user_settings=False,
		save_user_settings_fields=False,
		update=None,
		add_total_row=None,
		user_settings=None,
		reference_doctype=None,
		run=True,
		strict=True,
		pluck=None,
		ignore_ddl=False,
		*,
		parent_doctype=None,
	):
		"""Rows as _dicts (or lists / plucked values) for the doctype, filtered and ordered."""
		if not ignore_permissions and not frappe.has_permission(
			self.doctype, "select", user=user, parent_doctype=parent_doctype
		):
			if not frappe.has_permission(self.doctype, "read", user=user, parent_doctype=parent_doctype):
				frappe.flags.error_message = _("Insufficient Permission for {0}").format(
					frappe.bold(self.doctype)
				)
				raise frappe.PermissionError(self.doctype)
		if isinstance(fields, dict) or (fields and isinstance(fields, list) and isinstance(fields[0], list)):
			filters, fields = fields, filters
		elif fields and isinstance(filters, list) and len(filters) > 1 and isinstance(filters[0], str):
			filters, fields = fields, filters
		if not fields:
			fields = [pluck or "name"]
		if isinstance(fields, str):
			fields = [f.strip() for f in fields.split(",")] if "(" not in fields else [fields]
		if start:
			limit_start = start
		if page_length:
			limit_page_length = page_length
		if limit:
			limit_page_length = limit
		rows = frappe.db._select(
			self.doctype,
			fields,
			filters,
			or_filters=or_filters,
			# Frappe keeps an explicit order with distinct (its default order it drops)
			order_by=(None if order_by == DefaultOrderBy else order_by)
			if distinct
			else self._order_by(order_by, fields, group_by),
			limit=limit_page_length,
			offset=limit_start,
			group_by=group_by,
			distinct=distinct,
			ifnull=not ignore_ifnull,
			as_dict=not as_list or pluck,
		)
		if pluck:
			return [r[pluck] for r in rows]
		if as_list:
			return tuple(rows)
		if update:
			for r in rows:
				r.update(update)
		return rows

	def _order_by(self, order_by, fields, group_by):
		"""db_query.set_order_by: the DocType's sort, except for an aggregate without group by."""
		if order_by != DefaultOrderBy:
			return order_by
		if len(fields) == 1 and not group_by and str(fields[0]).lower().startswith(AGGREGATES):
			return None
		meta = frappe.get_meta(self.doctype)
		table = get_table_name(self.doctype)
		if meta.get("sort_field") and "," in meta.sort_field:
			return ", ".join(f"`{table}`.`{f.split()[0]}` {f.split()[1]}" for f in meta.sort_field.split(","))
		sort_order = (meta.get("sort_field") and meta.get("sort_order")) or "desc"
		return f"`{table}`.`{meta.get('sort_field') or 'modified'}` {sort_order}"
