from frappe.model.document import Document


class SyncTestSource(Document):
	pass
