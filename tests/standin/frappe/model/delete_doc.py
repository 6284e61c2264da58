"""`frappe.delete_doc` with Frappe 15's order: on_trash, on_change, link checks, delete, after_delete, Deleted Document."""

import frappe
from frappe import _
from frappe.database import get_table_name


def delete_doc(
	doctype=None,
	name=None,
	force=0,
	ignore_doctypes=None,
	for_reload=False,
	ignore_permissions=False,
	flags=None,
	ignore_on_trash=False,
	ignore_missing=True,
	delete_permanently=False,
):
	"""Delete documents; a missing one returns False unless ignore_missing is False."""
	ignore_doctypes = ignore_doctypes or []
	if not doctype:
		doctype = frappe.form_dict.get("dt")
		name = frappe.form_dict.get("dn")
	is_virtual = frappe.get_meta(doctype).is_virtual
	names = [name] if isinstance(name, str | int) else name
	for name in names or []:
		if is_virtual:
			frappe.get_doc(doctype, name).delete()
			continue
		if not frappe.db.exists(doctype, name):
			if not ignore_missing:
				raise frappe.DoesNotExistError
			return False
		frappe.db.get_value(doctype, name, for_update=True)
		doc = frappe.get_doc(doctype, name)
		if not for_reload:
			update_flags(doc, flags, ignore_permissions)
			check_permission_and_not_submitted(doc)
			if not ignore_on_trash:
				doc.run_method("on_trash")
				doc.flags.in_delete = True
				doc.run_method("on_change")
			if not force:
				check_if_doc_is_linked(doc)
				check_if_doc_is_dynamically_linked(doc)
		delete_from_table(doctype, name, ignore_doctypes, doc)
		doc.run_method("after_delete")
		if for_reload:
			delete_permanently = True
		if not delete_permanently:
			add_to_deleted_document(doc)
		if not for_reload and not frappe.flags.in_patch:
			doc.notify_update()


def add_to_deleted_document(doc):
	"""Keep a JSON copy in Deleted Document (raw db_insert, no hooks)."""
	if doc.doctype != "Deleted Document" and frappe.flags.in_install != "frappe":
		frappe.get_doc(
			dict(
				doctype="Deleted Document",
				deleted_doctype=doc.doctype,
				deleted_name=doc.name,
				data=doc.as_json(),
				owner=frappe.session.user,
			)
		).db_insert()


def delete_from_table(doctype, name, ignore_doctypes, doc):
	if doctype != "DocType" and doctype == name:
		frappe.db.delete("Singles", {"doctype": name})
	else:
		frappe.db.delete(doctype, {"name": name})
		frappe.clear_document_cache(doctype, name)
	child_doctypes = [
		d.options for d in doc.meta.get_table_fields() if not frappe.get_meta(d.options).is_virtual
	]
	for child_doctype in set(child_doctypes) - set(ignore_doctypes):
		frappe.db.delete(child_doctype, {"parenttype": doctype, "parent": name})


def update_flags(doc, flags=None, ignore_permissions=False):
	if ignore_permissions:
		flags = flags or {}
		flags["ignore_permissions"] = ignore_permissions
	if flags:
		doc.flags.update(flags)


def check_permission_and_not_submitted(doc):
	if (
		not doc.flags.ignore_permissions
		and frappe.session.user != "Administrator"
		and not doc.has_permission("delete")
	):
		frappe.msgprint(
			_("User not allowed to delete {0}: {1}").format(doc.doctype, doc.name),
			raise_exception=frappe.PermissionError,
		)
	if doc.docstatus.is_submitted():
		frappe.msgprint(
			_("{0} {1}: Submitted Record cannot be deleted. You must {2} Cancel {3} it first.").format(
				_(doc.doctype), doc.name, "", ""
			),
			raise_exception=True,
		)


def _all_metas():
	from frappe.model.meta import doctype_json_paths

	return [frappe.get_meta(dt) for dt in doctype_json_paths()]


def raise_link_exists_exception(doc, reference_doctype, reference_docname, row=""):
	frappe.throw(
		_("Cannot delete or cancel because {0} {1} is linked with {2} {3} {4}").format(
			_(doc.doctype), doc.name, _(reference_doctype), reference_docname, row
		),
		frappe.LinkExistsError,
	)


def check_if_doc_is_linked(doc, method="Delete"):
	"""Raise LinkExistsError if a Link field of another document points at `doc`."""
	ignored = set(frappe.get_hooks("ignore_links_on_delete")) if method == "Delete" else set()
	for meta in _all_metas():
		if meta.name in ignored or meta.is_virtual:
			continue
		for df in meta.get_link_fields():
			if df.options != doc.doctype:
				continue
			if meta.issingle:
				if frappe.db.get_single_value(meta.name, df.fieldname) == doc.name:
					raise_link_exists_exception(doc, meta.name, meta.name)
				continue
			fields = ["name", "docstatus"] + (["parent", "parenttype"] if meta.istable else [])
			for item in frappe.db.get_values(meta.name, {df.fieldname: doc.name}, fields, as_dict=True):
				parent = item.get("parent")
				linked_doctype = item.parenttype if parent else meta.name
				if linked_doctype in ignored:
					continue
				if meta.name == doc.doctype and (parent or item.name) == doc.name:
					continue
				raise_link_exists_exception(doc, linked_doctype, parent or item.name)


def check_if_doc_is_dynamically_linked(doc, method="Delete"):
	"""Raise LinkExistsError if a non-cancelled row's Dynamic Link points at `doc` (no self exemption)."""
	ignored = set(frappe.get_hooks("ignore_links_on_delete"))
	for meta in _all_metas():
		if meta.name in ignored or meta.is_virtual or meta.issingle:
			continue
		for df in meta.get_dynamic_link_fields():
			table = get_table_name(meta.name)
			extra = ", parent, parenttype" if meta.istable else ", null, null"
			rows = frappe.db.sql(
				f"select name, docstatus{extra} from `{table}` where `{df.options}` = %s and `{df.fieldname}` = %s",
				(doc.doctype, doc.name),
			)
			for name, docstatus, parent, parenttype in rows:
				if docstatus == 2 or (parenttype or meta.name) in ignored:
					continue
				raise_link_exists_exception(doc, parenttype or meta.name, parent or name)
