"""Create and migrate stand-in sites (the `bench new-site` / `install-app` / `migrate` equivalents).

Usage (with tests/standin on sys.path so `frappe` is the stand-in):
	create_site(sites_path, "test.localhost", redis_url="redis://127.0.0.1:6390", apps=["sync_tweaks"])
	migrate(sites_path, "test.localhost")
"""

import contextlib
import json
import os
import sqlite3

import frappe
from frappe.model.meta import clear_meta_cache, doctype_json_paths

STANDARD_ROLES = ("Administrator", "System Manager", "All", "Guest", "Desk User")


@contextlib.contextmanager
def _site_context(sites_path, site):
	"""Run with a fresh frappe.local for the site, restoring the caller's context afterwards."""
	saved = dict(frappe.local.__dict__)
	frappe.local.__dict__.clear()
	try:
		frappe.init(site, sites_path=sites_path)
		frappe.connect()
		yield
		frappe.db.commit()
	finally:
		frappe.destroy()
		frappe.local.__dict__.update(saved)
		clear_meta_cache()


def _write_json(path, data):
	with open(path, "w") as f:
		json.dump(data, f, indent=1, sort_keys=True)


def create_site(
	sites_path, site, *, redis_url, apps, developer_mode=1, extra_config=None, time_zone="Asia/Kolkata"
):
	"""Write configs, create the SQLite schema and core records, then install `apps` in order."""
	sites_path = os.path.abspath(sites_path)
	site_path = os.path.join(sites_path, site)
	os.makedirs(site_path, exist_ok=True)
	bench_id = os.path.realpath(os.path.join(sites_path, "..")).strip("/").replace("/", "-")
	common = os.path.join(sites_path, "common_site_config.json")
	common_config = frappe.get_file_json(common) if os.path.exists(common) else {}
	common_config.update({"redis_queue": redis_url, "redis_cache": redis_url, "bench_id": bench_id})
	_write_json(common, common_config)
	site_config = {
		"db_name": "_" + frappe.scrub(site).replace(".", "_"),
		"db_type": "sqlite",
		"db_file": "site.sqlite3",
		"developer_mode": developer_mode,
		"allow_tests": 1,
		"installed_apps": [],
		**(extra_config or {}),
	}
	_write_json(os.path.join(site_path, "site_config.json"), site_config)
	db_file = os.path.join(site_path, "site.sqlite3")
	if os.path.exists(db_file):
		os.remove(db_file)
	with contextlib.closing(sqlite3.connect(db_file)) as conn:
		conn.execute("PRAGMA journal_mode=WAL")
		conn.execute("create table tabSingles (doctype varchar(140), field varchar(140), value text)")
		conn.execute("create index singles_doctype_field_index on tabSingles (doctype, field)")
	with _site_context(sites_path, site):
		frappe.flags.in_install = "frappe"
		_sync_doctypes()
		for role in STANDARD_ROLES:
			frappe.get_doc(
				{"doctype": "Role", "role_name": role, "desk_access": int(role != "Guest")}
			).insert(ignore_permissions=True)
		for email, first_name, roles in (
			("Administrator", "Administrator", ["Administrator", "System Manager"]),
			("Guest", "Guest", ["Guest"]),
		):
			user = frappe.get_doc(
				{"doctype": "User", "email": email, "first_name": first_name, "name": email}
			)
			for role in roles:
				user.append("roles", {"role": role})
			user.insert(ignore_permissions=True, set_name=email)
		frappe.db.set_single_value("System Settings", {"time_zone": time_zone, "enable_scheduler": 0})
		frappe.flags.in_install = False
	for app in apps:
		install_app(sites_path, site, app)


def install_app(sites_path, site, app):
	"""Like `bench install-app`: Module Defs, tables, installed_apps, after_install, after_sync."""
	with _site_context(sites_path, site):
		frappe.flags.in_install = app
		app_hooks = frappe.get_hooks(app_name=app)
		for fn in app_hooks.before_install or []:
			if frappe.get_attr(fn)() is False:
				return
		for fn in frappe.get_hooks("before_app_install"):
			frappe.get_attr(fn)(app)
		path = os.path.join(frappe.local.site_path, "site_config.json")
		config = frappe.get_file_json(path)
		config["installed_apps"] = [*config.get("installed_apps", []), app]
		_write_json(path, config)
		frappe.local.conf = frappe._dict(frappe.get_site_config())
		frappe.setup_module_map()
		frappe.clear_cache()
		for module in frappe.get_module_list(app):
			frappe.get_doc({"doctype": "Module Def", "module_name": module, "app_name": app}).insert(
				ignore_permissions=True, ignore_if_duplicate=True
			)
		_sync_doctypes()
		for fn in app_hooks.after_install or []:
			frappe.get_attr(fn)()
		for fn in frappe.get_hooks("after_app_install"):
			frappe.get_attr(fn)(app)
		for fn in app_hooks.after_sync or []:
			frappe.get_attr(fn)()
		frappe.flags.in_install = False
		# Frappe 15 tells every installed app (the new one included) about the new app
		for fn in frappe.get_hooks("after_app_install"):
			frappe.get_attr(fn)(app)


def migrate(sites_path, site):
	"""Like `bench migrate`: before_migrate hooks, sync tables/indexes, after_migrate hooks."""
	with _site_context(os.path.abspath(sites_path), site):
		frappe.flags.in_migrate = True
		frappe.clear_cache()
		for app in frappe.get_installed_apps():
			for fn in frappe.get_hooks("before_migrate", app_name=app):
				frappe.get_attr(fn)()
		_sync_doctypes()
		for app in frappe.get_installed_apps():
			for fn in frappe.get_hooks("after_migrate", app_name=app):
				frappe.get_attr(fn)()
		frappe.flags.in_migrate = False


def _sync_doctypes():
	"""Create/alter tables for every known DocType, refresh tabDocType rows, call on_doctype_update."""
	from frappe.modules import load_doctype_module

	clear_meta_cache()
	for doctype in doctype_json_paths():
		meta = frappe.get_meta(doctype)
		frappe.db.sync_table(meta)
	frappe.db.commit()
	for doctype in doctype_json_paths():
		meta = frappe.get_meta(doctype)
		values = {k: meta.get(k) or 0 for k in ("istable", "issingle", "is_virtual", "custom")}
		if frappe.db.exists("DocType", doctype):
			frappe.db.set_value("DocType", doctype, {"module": meta.module, **values}, update_modified=False)
		else:
			frappe.get_doc(
				{"doctype": "DocType", "name": doctype, "module": meta.module, **values}
			).db_insert()
		app = frappe.local.module_app.get(frappe.scrub(meta.module))
		if app and app != "frappe" and not meta.is_virtual:
			try:
				module = load_doctype_module(doctype)
			except ImportError:
				module = None
			if module and hasattr(module, "on_doctype_update"):
				frappe.db.commit()
				module.on_doctype_update()
	frappe.db.commit()
