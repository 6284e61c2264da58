"""The parts of Frappe's User controller that decide `user_type` and guard deletion."""

import frappe
from frappe.model.document import Document


class User(Document):
	def validate(self):
		self.set_system_user()

	def set_system_user(self):
		"""System User when any role has desk access, else Website User (the standard user types)."""
		self.user_type = "System User" if self.has_desk_access() else "Website User"

	def has_desk_access(self):
		roles = [d.role for d in self.roles or []]
		return bool(roles) and bool(frappe.db.count("Role", {"desk_access": 1, "name": ("in", roles)}))

	def on_trash(self):
		if self.name in frappe.STANDARD_USERS:
			frappe.throw(f"User {self.name} cannot be deleted")
		self.a_system_manager_should_exist()

	def a_system_manager_should_exist(self):
		"""Frappe refuses to delete a user unless another enabled System Manager (not Administrator) exists."""
		if frappe.db.get_value("Role", {"name": "System Manager"}, "disabled"):
			return
		others = frappe.db.sql(
			"""select user.name from `tabUser` user, `tabHas Role` user_role
			where user_role.role='System Manager' and user.enabled=1 and user_role.parent=user.name
			and user_role.parent not in ('Administrator', %s) limit 1""",
			(self.name,),
		)
		if not others:
			frappe.throw("There should remain at least one System Manager")
