"""`frappe.handler`: the request path of /api/method (whitelist, guest and HTTP-method checks)."""

from inspect import signature

import frappe
from frappe import _
from frappe.utils import cint


def execute_cmd(cmd, from_async=False):
	"""Run a whitelisted method with `frappe.form_dict` as arguments."""
	for hook in reversed(frappe.get_hooks("override_whitelisted_methods", {}).get(cmd, [])):
		cmd = hook
		break
	try:
		method = get_attr(cmd)
	except Exception as e:
		frappe.throw(_("Failed to get method for command {0} with {1}").format(cmd, e))
	if from_async:
		method = method.queue
	if method != run_doc_method:
		frappe.is_whitelisted(method)
		is_valid_http_method(method)
	return frappe.call(method, **frappe.form_dict)


def get_attr(cmd):
	"""Dotted path via frappe.get_attr; a bare name means a function of this module."""
	if "." in cmd:
		return frappe.get_attr(cmd)
	return globals()[cmd]


def is_valid_http_method(method):
	if frappe.flags.in_safe_exec:
		return
	http_method = frappe.local.request.method
	if http_method not in frappe.allowed_http_methods_for_whitelisted_func[method]:
		throw_permission_error()


def throw_permission_error():
	frappe.throw(_("Not permitted"), frappe.PermissionError)


def run_doc_method(method, docs=None, dt=None, dn=None, arg=None, args=None):
	"""Run a whitelisted controller method; checks only read permission on the document."""
	if not args and arg:
		args = arg
	if dt:
		if not dn:
			dn = dt
		doc = frappe.get_doc(dt, dn)
	else:
		docs = frappe.parse_json(docs)
		doc = frappe.get_doc(docs)
		doc._original_modified = doc.modified
		doc.check_if_latest()
	if not doc or not doc.has_permission("read"):
		throw_permission_error()
	try:
		args = frappe.parse_json(args)
	except ValueError:
		pass
	method_obj = getattr(doc, method)
	fn = getattr(method_obj, "__func__", method_obj)
	frappe.is_whitelisted(fn)
	is_valid_http_method(fn)
	fnargs = list(signature(method_obj).parameters)
	if not fnargs or (len(fnargs) == 1 and fnargs[0] == "self"):
		response = doc.run_method(method)
	elif "args" in fnargs or not isinstance(args, dict):
		response = doc.run_method(method, args)
	else:
		response = doc.run_method(method, **args)
	frappe.response.docs.append(doc)
	if response is None:
		return
	if cint(frappe.form_dict.get("as_csv")):
		return
	frappe.response["message"] = response


runserverobj = run_doc_method
