"""`frappe.modules.export_file`: write records as `{module}/{dt}/{dn}/{dn}.json`."""

import os

import frappe
from frappe.model import child_table_fields, default_fields
from frappe.modules import scrub
from frappe.modules.utils import scrub_dt_dn


def export_to_files(record_list=None, record_module=None, verbose=0, create_init=None):
	if frappe.flags.in_import:
		return
	for record in record_list or []:
		folder_name = record[2] if len(record) == 3 else None
		write_document_file(
			frappe.get_doc(record[0], record[1]),
			record_module,
			create_init=create_init,
			folder_name=folder_name,
		)


def write_document_file(doc, record_module=None, create_init=True, folder_name=None):
	doc_export = doc.as_dict(no_nulls=True)
	doc.run_method("before_export", doc_export)
	for df in doc.meta.get_table_fields():
		for d in doc_export.get(df.fieldname):
			for fieldname in default_fields + child_table_fields:
				d.pop(fieldname, None)
	module = record_module or doc.get("module") or frappe.get_meta(doc.doctype).module
	folder = create_folder(module, folder_name or doc.doctype, doc.name, create_init)
	path = os.path.join(folder, f"{scrub(doc.name)}.json")
	with open(path, "w+") as txtfile:
		txtfile.write(frappe.as_json(doc_export))
	print(f"Wrote document file for {doc.doctype} {doc.name} at {path}")


def create_folder(module, dt, dn, create_init):
	module_path = frappe.get_module_path(module)
	dt, dn = scrub_dt_dn(dt, dn)
	folder = os.path.join(module_path, dt, dn)
	frappe.create_folder(folder)
	if create_init:
		create_init_py(module_path, dt, dn)
	return folder


def create_init_py(module_path, dt, dn):
	def create_if_not_exists(path):
		initpy = os.path.join(path, "__init__.py")
		if not os.path.exists(initpy):
			open(initpy, "w").close()

	create_if_not_exists(os.path.join(module_path))
	create_if_not_exists(os.path.join(module_path, dt))
	create_if_not_exists(os.path.join(module_path, dt, dn))
