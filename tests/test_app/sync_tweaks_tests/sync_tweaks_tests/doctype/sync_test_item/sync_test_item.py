from frappe.model.document import Document


class SyncTestItem(Document):
	pass
