import frappe

ROLES = ("Sync Tester",)


def before_install():
	"""Roles used by the fixture DocTypes' permissions must exist before the DocTypes are synced."""
	for role in ROLES:
		if not frappe.db.exists("Role", role):
			frappe.get_doc({"doctype": "Role", "role_name": role, "desk_access": 1}).insert(
				ignore_permissions=True
			)
