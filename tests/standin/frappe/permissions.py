"""Role-based permissions of `frappe.permissions` (no user permissions, sharing or if_owner)."""

import frappe
from frappe import _

GUEST_ROLE = "Guest"
ALL_USER_ROLE = "All"
SYSTEM_USER_ROLE = "Desk User"
ADMIN_ROLE = "Administrator"
AUTOMATIC_ROLES = (GUEST_ROLE, ALL_USER_ROLE, SYSTEM_USER_ROLE, ADMIN_ROLE)
rights = (
	"select",
	"read",
	"write",
	"create",
	"delete",
	"submit",
	"cancel",
	"amend",
	"print",
	"email",
	"report",
	"import",
	"export",
	"share",
)


def get_roles(user=None, with_standard=True):
	"""Administrator: every Role; Guest: Guest; others: Has Role rows + All + Guest (+ Desk User for System Users)."""
	if not user:
		user = frappe.session.user
	if user == "Guest" or not user:
		return [GUEST_ROLE]
	if user == "Administrator":
		roles = frappe.get_all("Role", pluck="name")
	else:
		roles = frappe.db.sql(
			"select role from `tabHas Role` where parenttype = 'User' and parent = %s and role not in %s",
			(user, AUTOMATIC_ROLES),
			pluck=True,
		)
		roles += [ALL_USER_ROLE, GUEST_ROLE]
		if frappe.db.get_value("User", user, "user_type") == "System User":
			roles.append(SYSTEM_USER_ROLE)
	if not with_standard:
		roles = [r for r in roles if r not in AUTOMATIC_ROLES]
	return roles


def get_role_permissions(meta, user=None):
	roles = set(get_roles(user))
	perms = frappe._dict()
	for p in meta.permissions:
		if p.role in roles and not frappe.utils.cint(p.get("permlevel")):
			for right in rights:
				if p.get(right):
					perms[right] = 1
	if perms.get("read") and not perms.get("select"):
		perms["select"] = 1
	return perms


def has_permission(
	doctype, ptype="read", doc=None, user=None, raise_exception=True, *, parent_doctype=None, debug=False
):
	"""True if the user's roles grant `ptype` on the doctype (child tables use their parent's)."""
	if not user:
		user = frappe.session.user
	if user == "Administrator":
		return True
	if not doc and hasattr(doctype, "doctype"):
		doc, doctype = doctype, doctype.doctype
	meta = frappe.get_meta(doctype)
	if meta.istable:
		parent = parent_doctype or (doc.get("parenttype") if doc and not isinstance(doc, str) else None)
		if not parent:
			return False
		return has_permission(
			parent, "read" if ptype == "select" else ptype, user=user, raise_exception=raise_exception
		)
	if doc and isinstance(doc, str | int):
		doc = frappe.get_doc(meta.name, doc)
	hooks = frappe.get_hooks("has_permission", {}).get(doctype, [])
	perm = bool(get_role_permissions(meta, user=user).get(ptype))
	if perm and doc:
		for method in hooks:
			result = frappe.call(method, doc=doc, ptype=ptype, user=user, debug=debug)
			if result is not None and not result:
				perm = False
	if not perm and raise_exception:
		frappe.msgprint(
			_("User {0} does not have doctype access via role permission for document {1}").format(
				frappe.bold(user), frappe.bold(_(doctype))
			)
		)
	return perm
