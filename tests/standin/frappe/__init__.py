"""Stand-in for the subset of Frappe's `frappe` module that sync_tweaks uses (see tests/standin).

It follows Frappe 15.101; with RQ 2 installed (Frappe 16's pins) its background jobs are Frappe 16's.
"""

import copy
import datetime
import decimal
import functools
import importlib
import inspect
import json
import os
import threading
import types
from collections.abc import Iterable

from frappe.exceptions import *  # noqa: F403
from frappe.exceptions import (
	AppNotInstalledError,
	IncorrectSitePath,
	PermissionError,
	ValidationError,
)

STANDIN = True
STANDARD_USERS = ("Guest", "Administrator")


class _dict(dict):
	"""dict with attribute access; missing attributes are None."""

	__getattr__ = dict.get
	__setattr__ = dict.__setitem__
	__delattr__ = dict.__delitem__

	def __getstate__(self):
		return self

	def __setstate__(self, d):
		self.update(d)

	def update(self, *args, **kwargs):
		super().update(*args, **kwargs)
		return self

	def copy(self):
		return _dict(self)


class _Local(threading.local):
	"""Per-thread context like werkzeug's Local in `frappe.local`."""


local = _Local()
_LOCAL_PROXIES = {
	"db",
	"conf",
	"form_dict",
	"request",
	"job",
	"response",
	"session",
	"user",
	"flags",
	"error_log",
	"debug_log",
	"message_log",
	"lang",
}
_cache = None


def __getattr__(name):
	if name in _LOCAL_PROXIES:
		return getattr(local, name, None)
	if name == "form":
		return getattr(local, "form_dict", None)
	if name == "cache":
		return _get_cache()
	if name == "__version__":  # read late: RQ's import is slow and most processes import it anyway
		import rq

		return "16.0.0" if rq.VERSION.startswith("2.") else "15.101.1"
	raise AttributeError(f"module 'frappe' has no attribute '{name}'")


def _get_cache():
	global _cache
	url = get_conf().get("redis_cache")
	if _cache is None or _cache.url != url:
		from frappe.utils.redis_wrapper import RedisWrapper

		_cache = RedisWrapper.from_url(url)
		_cache.url = url
	return _cache


def _(msg, lang=None, context=None):
	return msg


def as_unicode(text, encoding="utf-8"):
	if isinstance(text, str):
		return text
	if text is None:
		return ""
	if isinstance(text, bytes):
		return str(text, encoding)
	return str(text)


def init(site, sites_path=".", new_site=False, force=False):
	"""Initialise `frappe.local` for a site, like Frappe's init."""
	if getattr(local, "initialised", None) and not force:
		return
	local.error_log = []
	local.message_log = []
	local.debug_log = []
	local.flags = _dict(
		currently_saving=[],
		redirect_location="",
		in_install_db=False,
		in_install_app=False,
		in_import=False,
		in_test=False,
		mute_messages=False,
		ignore_links=False,
		mute_emails=False,
		has_dataurl=False,
		new_site=new_site,
		read_only=False,
	)
	local.locked_documents = []
	local.test_objects = {}
	local.site = site
	local.sites_path = sites_path
	local.site_path = os.path.join(sites_path, site)
	local.all_apps = None
	local.request_ip = None
	local.request = None
	local.job = None
	local.db = None
	local.response = _dict({"docs": []})
	local.task_id = None
	local.conf = _dict(get_site_config())
	local.lang = local.conf.lang or "en"
	local.module_app = None
	local.app_modules = None
	local.user = None
	local.user_perms = None
	local.role_permissions = {}
	local.valid_columns = {}
	local.new_doc_templates = {}
	local.cache = {}
	local.form_dict = _dict()
	local.session = _dict()
	setup_module_map()
	local.initialised = True


def connect(site=None, db_name=None, set_admin_as_user=True):
	"""Connect `frappe.db` to the site's SQLite file."""
	from frappe.database import Database

	if site:
		init(site)
	path = local.conf.db_file
	if not path:
		raise IncorrectSitePath(f"{local.site}: db_file missing in site_config.json")
	local.db = Database(os.path.join(local.site_path, path))
	if set_admin_as_user:
		set_user("Administrator")


def get_site_config(sites_path=None, site_path=None):
	"""Merge common_site_config.json and the site's site_config.json."""
	config = _dict()
	sites_path = sites_path or getattr(local, "sites_path", None)
	site_path = site_path or getattr(local, "site_path", None)
	if sites_path:
		config.update(get_common_site_config(sites_path))
	if site_path:
		site_config = os.path.join(site_path, "site_config.json")
		if os.path.exists(site_config):
			config.update(get_file_json(site_config))
		elif local.site and not local.flags.new_site:
			raise IncorrectSitePath(f"{local.site} does not exist")
	config["redis_queue"] = (
		os.environ.get("FRAPPE_REDIS_QUEUE") or config.get("redis_queue") or "redis://127.0.0.1:11311"
	)
	config["redis_cache"] = (
		os.environ.get("FRAPPE_REDIS_CACHE") or config.get("redis_cache") or "redis://127.0.0.1:13311"
	)
	config["db_type"] = "sqlite"
	return config


def get_common_site_config(sites_path=None):
	path = os.path.join(sites_path or local.sites_path, "common_site_config.json")
	return _dict(get_file_json(path)) if os.path.exists(path) else _dict()


def get_conf(site=None):
	if hasattr(local, "conf"):
		return local.conf
	with init_site(site):
		return local.conf


class init_site:
	def __init__(self, site=None):
		self.site = site or ""

	def __enter__(self):
		init(self.site)
		return local

	def __exit__(self, type, value, traceback):
		destroy()


def destroy():
	"""Close the connection and release `frappe.local`."""
	if getattr(local, "db", None):
		local.db.close()
	local.__dict__.clear()


def get_traceback(with_context=False):
	from frappe.utils import get_traceback

	return get_traceback(with_context=with_context)


def log(msg):
	local.debug_log.append(as_unicode(msg))


def msgprint(
	msg,
	title=None,
	raise_exception=False,
	as_table=False,
	as_list=False,
	indicator=None,
	alert=False,
	primary_action=None,
	is_minimizable=False,
	wide=False,
	*,
	realtime=False,
):
	"""Append a message to `message_log` and raise `raise_exception` if given."""
	out = _dict(message=msg)

	def _raise_exception():
		if raise_exception:
			if inspect.isclass(raise_exception) and issubclass(raise_exception, Exception):
				raise raise_exception(msg)
			raise ValidationError(msg)

	if local.flags.mute_messages:
		_raise_exception()
		return
	if as_table and type(msg) in (list, tuple):
		out.as_table = 1
	if as_list and type(msg) in (list, tuple):
		out.as_list = 1
	out.title = title or _("Message")
	if not indicator and raise_exception:
		indicator = "red"
	if indicator:
		out.indicator = indicator
	if is_minimizable:
		out.is_minimizable = is_minimizable
	if alert:
		out.alert = 1
	if raise_exception:
		out.raise_exception = 1
		out.__frappe_exc_id = generate_hash()
	if primary_action:
		out.primary_action = primary_action
	if wide:
		out.wide = wide
	if realtime:
		publish_realtime(event="msgprint", message=out)
	else:
		local.message_log.append(out)
	_raise_exception()


def clear_messages():
	local.message_log = []


def clear_last_message():
	if local.message_log:
		local.message_log = local.message_log[:-1]


def throw(
	msg, exc=ValidationError, title=None, is_minimizable=False, wide=False, as_list=False, primary_action=None
):
	"""Raise `exc` with `msg` after msgprint, like Frappe."""
	msgprint(
		msg,
		raise_exception=exc,
		title=title,
		indicator="red",
		is_minimizable=is_minimizable,
		wide=wide,
		as_list=as_list,
		primary_action=primary_action,
	)


def log_error(title=None, message=None, reference_doctype=None, reference_name=None, *, defer_insert=False):
	"""Insert an Error Log (title may be swapped with a traceback, like Frappe)."""
	traceback = None
	if message:
		if "\n" in (title or ""):
			traceback, title = title, message
		else:
			traceback = message
	title = title or "Error"
	traceback = as_unicode(traceback or get_traceback(with_context=True))
	if not getattr(local, "db", None):
		print(f"Failed to log error in db: {title}")
		return
	error_log = get_doc(
		doctype="Error Log",
		error=traceback,
		method=title,
		reference_doctype=reference_doctype,
		reference_name=reference_name,
	)
	return error_log.insert(ignore_permissions=True)


def create_folder(path, with_init=False):
	if not os.path.exists(path):
		os.makedirs(path)
		if with_init:
			open(os.path.join(path, "__init__.py"), "a").close()


def set_user(username):
	"""Set the current session user and reset per-user caches."""
	local.session.user = username
	local.session.sid = username
	local.cache = {}
	local.form_dict = _dict()
	local.session.data = _dict()
	local.role_permissions = {}
	local.new_doc_templates = {}
	local.user_perms = None


def get_roles(username=None):
	if not local.session or not local.session.user:
		return ["Guest"]
	import frappe.permissions

	return frappe.permissions.get_roles(username or local.session.user)


whitelisted = []
guest_methods = []
xss_safe_methods = []
allowed_http_methods_for_whitelisted_func = {}


def whitelist(allow_guest=False, xss_safe=False, methods=None):
	"""Register a function as callable over HTTP."""
	if not methods:
		methods = ["GET", "POST", "PUT", "DELETE"]

	def innerfn(fn):
		method = None
		if hasattr(fn, "__func__"):
			method = fn
			fn = method.__func__
		whitelisted.append(fn)
		allowed_http_methods_for_whitelisted_func[fn] = methods
		if allow_guest:
			guest_methods.append(fn)
			if xss_safe:
				xss_safe_methods.append(fn)
		return method or fn

	return innerfn


def is_whitelisted(method):
	is_guest = local.session["user"] == "Guest"
	if method not in whitelisted or is_guest and method not in guest_methods:
		summary = _("You are not permitted to access this resource.")
		detail = _("Function {0} is not whitelisted.").format(bold(f"{method.__module__}.{method.__name__}"))
		throw(
			f"<details><summary>{summary}</summary>{detail}</details>",
			PermissionError,
			title="Method Not Allowed",
		)
	if is_guest and method not in xss_safe_methods:
		from frappe.utils import escape_html

		for key, value in local.form_dict.items():
			if isinstance(value, str):
				local.form_dict[key] = escape_html(value)


def only_for(roles, message=False):
	"""Raise PermissionError unless the user has one of `roles` (skipped in tests and for Administrator)."""
	if local.flags.in_test or local.session.user == "Administrator":
		return
	if isinstance(roles, str):
		roles = (roles,)
	if set(roles).isdisjoint(get_roles()):
		if not message:
			raise PermissionError
		throw(
			_("This action is only allowed for {}").format(", ".join(bold(_(role)) for role in roles)),
			PermissionError,
			_("Not Permitted"),
		)


def clear_cache(user=None, doctype=None):
	from frappe.model.meta import clear_meta_cache

	clear_meta_cache()
	local.role_permissions = {}
	local.valid_columns = {}
	local.cache = {}
	local.new_doc_templates = {}
	local.__dict__.pop("doc_events_hooks", None)
	_load_app_hooks.cache_clear()


def clear_document_cache(doctype=None, name=None):
	"""Forget cached documents now, and again when the transaction ends (as Frappe does)."""

	def clear():
		cache = getattr(local, "document_cache", None)
		if not cache:
			return
		for key in [key for key in cache if key[0] == doctype and (name is None or key[1] == name)]:
			del cache[key]

	clear()
	db = getattr(local, "db", None)
	if db is not None:
		db.after_commit.add(clear)
		db.after_rollback.add(clear)


def has_permission(
	doctype=None, ptype="read", doc=None, user=None, throw=False, *, parent_doctype=None, debug=False
):
	"""Role-based permission check from the DocType JSON `permissions`."""
	import frappe.permissions

	if not doctype and doc:
		doctype = doc.doctype
	out = frappe.permissions.has_permission(
		doctype, ptype, doc=doc, user=user, raise_exception=throw, parent_doctype=parent_doctype
	)
	if throw and not out:
		label = f"{_(doctype)} {doc if isinstance(doc, str) else doc.name}" if doc else _(doctype)
		local.flags.error_message = _("No permission for {0}").format(label)
		raise PermissionError
	return out


def generate_hash(txt=None, length=56):
	import math
	import secrets

	return secrets.token_hex(math.ceil((length or 56) / 2))[: length or 56]


def new_doc(doctype, *, parent_doc=None, parentfield=None, as_dict=False):
	from frappe.model.document import new_doc as _new_doc

	return _new_doc(doctype, parent_doc=parent_doc, parentfield=parentfield, as_dict=as_dict)


def get_doc(*args, **kwargs):
	import frappe.model.document

	return frappe.model.document.get_doc(*args, **kwargs)


def get_cached_doc(*args, **kwargs):
	"""Frappe keeps documents in Redis until they change; here the cache lives as long as the context
	(one request or job), with the same invalidation points (save, set_value, delete, rollback)."""
	cache = local.__dict__.setdefault("document_cache", {})
	key = tuple(args) if len(args) == 2 and all(isinstance(arg, str) for arg in args) else None
	if key in cache:
		return cache[key]
	doc = get_doc(*args, **kwargs)
	cache[(doc.doctype, doc.name)] = doc
	return doc


def get_meta(doctype, cached=True):
	import frappe.model.meta

	return frappe.model.meta.get_meta(doctype, cached=cached)


def get_system_settings(key):
	if not getattr(local, "db", None):
		return None
	return local.db.get_single_value("System Settings", key)


def delete_doc(*args, **kwargs):
	import frappe.model.delete_doc

	return frappe.model.delete_doc.delete_doc(*args, **kwargs)


def get_module(modulename):
	return importlib.import_module(modulename)


def scrub(txt):
	from frappe.utils.data import cstr

	return cstr(txt).replace(" ", "_").replace("-", "_").lower()


def get_module_path(module, *joins):
	from frappe.modules.utils import get_module_app

	app = get_module_app(module)
	return get_pymodule_path(app + "." + scrub(module), *joins)


def get_app_path(app_name, *joins):
	return get_pymodule_path(app_name, *joins)


def get_pymodule_path(modulename, *joins):
	if "public" not in joins:
		joins = [scrub(part) for part in joins]
	return os.path.abspath(
		os.path.join(os.path.dirname(get_module(scrub(modulename)).__file__ or ""), *joins)
	)


def get_module_list(app_name):
	return get_file_items(get_app_path(app_name, "modules.txt"))


def get_installed_apps(*, _ensure_on_bench=False):
	"""Installed apps of the site ("frappe" first); the stand-in keeps them in site_config."""
	if local.flags.in_install_db:
		return []
	return ["frappe", *[a for a in (local.conf.installed_apps or []) if a != "frappe"]]


@functools.lru_cache
def _load_app_hooks_for(apps):
	hooks = {}
	for app in apps:
		app_hooks = get_module(f"{app}.hooks")

		def _is_valid_hook(obj):
			return not isinstance(obj, types.ModuleType | types.FunctionType | type)

		for key, value in inspect.getmembers(app_hooks, predicate=_is_valid_hook):
			if not key.startswith("_"):
				append_hook(hooks, key, value)
	return hooks


def _load_app_hooks(app_name=None):
	return _load_app_hooks_for(tuple([app_name] if app_name else get_installed_apps()))


_load_app_hooks.cache_clear = _load_app_hooks_for.cache_clear


def get_hooks(hook=None, default="_KEEP_DEFAULT_LIST", app_name=None):
	"""Merged hooks of installed apps: dict hooks merged per key, others concatenated."""
	hooks = _dict(copy.deepcopy(_load_app_hooks(app_name)))
	if hook:
		return hooks.get(hook, ([] if default == "_KEEP_DEFAULT_LIST" else default))
	return hooks


def append_hook(target, key, value):
	if isinstance(value, dict):
		target.setdefault(key, {})
		for inkey in value:
			append_hook(target[key], inkey, value[inkey])
	else:
		target.setdefault(key, [])
		if not isinstance(value, list):
			value = [value]
		target[key].extend(value)


def get_doc_hooks():
	"""doc_events hooks, with tuple keys expanded (kept for the context, as Frappe does)."""
	if "doc_events_hooks" not in local.__dict__:
		out = {}
		for key, value in get_hooks("doc_events", {}).items():
			for doctype in key if isinstance(key, tuple) else (key,):
				append_hook(out, doctype, value)
		local.doc_events_hooks = out
	return local.doc_events_hooks


def setup_module_map(include_all_apps=True):
	"""Build `local.app_modules` and `local.module_app` from each app's modules.txt."""
	local.app_modules = {"frappe": ["core", "desk"]}
	for app in get_installed_apps():
		if app != "frappe":
			local.app_modules[app] = [scrub(m) for m in get_module_list(app)]
	local.module_app = {m: app for app, modules in local.app_modules.items() for m in modules}


def get_file_items(path, raise_not_found=False, ignore_empty_lines=True):
	content = read_file(path, raise_not_found=raise_not_found)
	if not content:
		return []
	return [
		p.strip()
		for p in content.strip().splitlines()
		if (not ignore_empty_lines) or (p.strip() and not p.startswith("#"))
	]


def get_file_json(path):
	with open(path) as f:
		return json.load(f)


def read_file(path, raise_not_found=False):
	if os.path.exists(path):
		with open(path) as f:
			return f.read()
	if raise_not_found:
		raise OSError(f"{path} Not Found")
	return None


def get_attr(method_string):
	"""Resolve a dotted path, refusing apps not installed on the site."""
	app_name = method_string.split(".", 1)[0]
	if not local.flags.in_uninstall and not local.flags.in_install and app_name not in get_installed_apps():
		throw(_("App {0} is not installed").format(app_name), AppNotInstalledError)
	modulename, methodname = method_string.rsplit(".", 1)
	return getattr(get_module(modulename), methodname)


def call(fn, *args, **kwargs):
	if isinstance(fn, str):
		fn = get_attr(fn)
	return fn(*args, **get_newargs(fn, kwargs))


def get_newargs(fn, kwargs):
	if hasattr(fn, "fnargs"):
		fnargs = fn.fnargs
	else:
		fullargspec = inspect.getfullargspec(fn)
		fnargs = fullargspec.args + fullargspec.kwonlyargs
		if fullargspec.varkw:
			return {k: v for k, v in kwargs.items() if k != "ignore_permissions" and k != "flags"}
	return {a: kwargs[a] for a in fnargs if a in kwargs}


def get_all(doctype, *args, **kwargs):
	kwargs["ignore_permissions"] = True
	if "limit_page_length" not in kwargs:
		kwargs["limit_page_length"] = 0
	return get_list(doctype, *args, **kwargs)


def get_list(doctype, *args, **kwargs):
	import frappe.model.db_query

	return frappe.model.db_query.DatabaseQuery(doctype).execute(*args, **kwargs)


def get_value(*args, **kwargs):
	return local.db.get_value(*args, **kwargs)


def json_handler(obj):
	"""JSON serialiser for Frappe types, like frappe.utils.response.json_handler."""
	from frappe.model.document import BaseDocument

	if isinstance(obj, datetime.date | datetime.timedelta | datetime.datetime | datetime.time):
		return str(obj)
	if isinstance(obj, decimal.Decimal):
		return float(obj)
	if isinstance(obj, BaseDocument):
		return obj.as_dict(no_nulls=True)
	if isinstance(obj, Iterable):
		return list(obj)
	if type(obj) is type or isinstance(obj, Exception) or callable(obj):
		return repr(obj)
	raise TypeError(f"Object of type {type(obj)} with value of {obj!r} is not JSON serializable")


def as_json(obj, indent=1, separators=None, ensure_ascii=True):
	if separators is None:
		separators = (",", ": ")
	try:
		return json.dumps(
			obj,
			indent=indent,
			sort_keys=True,
			default=json_handler,
			separators=separators,
			ensure_ascii=ensure_ascii,
		)
	except TypeError:
		return json.dumps(
			obj, indent=indent, default=json_handler, separators=separators, ensure_ascii=ensure_ascii
		)


def parse_json(val):
	if isinstance(val, str):
		val = json.loads(val)
	if isinstance(val, dict):
		val = _dict(val)
	return val


def publish_realtime(*args, **kwargs):
	import frappe.realtime

	return frappe.realtime.publish_realtime(*args, **kwargs)


def enqueue(*args, **kwargs):
	import frappe.utils.background_jobs

	return frappe.utils.background_jobs.enqueue(*args, **kwargs)


def bold(text):
	return f"<strong>{text}</strong>"
