"""`frappe.get_list`/`get_all` query engine (db_query semantics: ifnull fallbacks, default order)."""

import frappe
from frappe import _
from frappe.database import DefaultOrderBy, get_table_name


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
		meta = frappe.get_meta(self.doctype)
		if order_by == DefaultOrderBy:
			sort_field = meta.get("sort_field") or "modified"
			sort_order = meta.get("sort_order") or "desc"
			order_by = f"`{get_table_name(self.doctype)}`.`{sort_field}` {sort_order}"
		if group_by and order_by and "modified" in order_by and not any("modified" in f for f in fields):
			order_by = None
		extra = None
		if or_filters:
			from frappe.database import Filters

			parts = []
			f = Filters(self.doctype, ifnull=not ignore_ifnull)
			items = or_filters.items() if isinstance(or_filters, dict) else or_filters
			for item in items:
				where = f.build(dict([item]) if isinstance(or_filters, dict) else [item])
				parts.append(where[7:])
			extra = "(" + " or ".join(parts) + ")"
			extra_params = f.params
		rows = self._run(
			fields,
			filters,
			extra,
			extra_params if or_filters else [],
			order_by=order_by,
			limit=limit_page_length,
			offset=limit_start,
			group_by=group_by,
			distinct=distinct,
			ifnull=not ignore_ifnull,
			as_list=as_list or bool(pluck),
		)
		if pluck:
			return [r[0] for r in rows]
		if as_list:
			return tuple(tuple(r) for r in rows)
		if update:
			for r in rows:
				r.update(update)
		return rows

	def _run(
		self,
		fields,
		filters,
		extra,
		extra_params,
		*,
		order_by,
		limit,
		offset,
		group_by,
		distinct,
		ifnull,
		as_list,
	):
		from frappe.database import Filters, build_fields

		f = Filters(self.doctype, ifnull=ifnull)
		where = f.build(filters)
		params = list(f.params)
		if extra:
			where = (where + " and " if where else " where ") + extra
			params += extra_params
		query = f"select {'distinct ' if distinct else ''}{build_fields(self.doctype, fields)} from `{get_table_name(self.doctype)}`{where}"
		if group_by:
			query += f" group by {group_by}"
		if order_by:
			query += f" order by {order_by}"
		if frappe.utils.cint(limit):
			query += f" limit {frappe.utils.cint(limit)}"
			if offset:
				query += f" offset {frappe.utils.cint(offset)}"
		elif offset:
			query += f" limit -1 offset {frappe.utils.cint(offset)}"
		db = frappe.db
		db._execute(query, params)
		rows = db._cursor.fetchall()
		if as_list:
			return [list(r) for r in rows]
		keys = [c[0] for c in db._cursor.description]
		return [frappe._dict(zip(keys, r, strict=False)) for r in rows]
