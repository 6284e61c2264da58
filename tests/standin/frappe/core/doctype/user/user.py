"""The parts of Frappe 15.101's User controller that decide `user_type` and guard deletion."""

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
		# 15.29 also refused to delete the last System Manager; 15.101 does not
		if self.name in frappe.STANDARD_USERS:
			frappe.throw(f"User {self.name} cannot be deleted")
