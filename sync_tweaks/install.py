"""Import the standard Sync Job Types that apps ship, after install and after migrate."""

import glob
import os

import frappe


def after_install():
	sync_standard_sync_job_types()


def after_migrate():
	sync_standard_sync_job_types()


def after_app_install(app_name: str):
	if app_name != "sync_tweaks":
		sync_standard_sync_job_types([app_name])


def sync_standard_sync_job_types(apps: list[str] | None = None) -> list[str]:
	"""Create or update every `{app}/{module}/sync_job_type/*/*.json` of the installed apps."""
	from frappe.modules.import_file import import_file_by_path

	paths = standard_type_files(apps or frappe.get_installed_apps())
	for i, path in enumerate(paths):
		import_file_by_path(path)
		if not frappe.flags.in_test:
			frappe.utils.update_progress_bar("Syncing standard Sync Job Types", i, len(paths))
	if paths and not frappe.flags.in_test:
		print()
	return paths


def standard_type_files(apps: list[str]) -> list[str]:
	paths = []
	for app in apps:
		for module in frappe.get_module_list(app):
			folder = frappe.get_module_path(module, "sync_job_type")
			paths.extend(sorted(glob.glob(os.path.join(folder, "*", "*.json"))))
	return paths
