from frappe.model.document import Document


class SyncTestTarget(Document):
	pass
