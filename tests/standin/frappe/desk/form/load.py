"""`frappe.desk.form.load`: the part of loading a form that runs the document's `onload`."""

import frappe


def run_onload(doc):
	"""Reset `__onload` and run the `onload` controller method and doc_events hooks, as Frappe does."""
	doc.set("__onload", frappe._dict())
	doc.run_method("onload")
