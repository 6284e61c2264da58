"""Find, import and check the per-type sync controller module."""

import importlib
import importlib.util
import os
import re
from types import ModuleType

import frappe
from frappe import _
from frappe.modules.utils import get_module_app

from sync_tweaks.engine.shapes import Shape, controller_shape, shape_problems
from sync_tweaks.exceptions import SyncControllerError

DOTTED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def module_path(job_type) -> str:
	"""Dotted path of the type's controller: the explicit `controller`, else the generated one."""
	if job_type.get("controller"):
		return job_type.controller
	try:
		app = get_module_app(job_type.module)  # the site's module map: no query per job
	except frappe.DoesNotExistError:
		frappe.clear_last_message()
		frappe.throw(
			_("Module {0} of Sync Job Type {1} does not exist").format(job_type.module, job_type.name)
		)
	name = frappe.scrub(job_type.name)
	return f"{app}.{frappe.scrub(job_type.module)}.sync_job_type.{name}.{name}"


def file_path(job_type) -> str | None:
	"""Where the controller's file is or would be generated; None for an explicit path that does not resolve."""
	if job_type.get("controller"):
		spec = _find_spec(job_type.controller)
		return spec.origin if spec else None
	name = frappe.scrub(job_type.name)
	return frappe.get_module_path(job_type.module, "sync_job_type", name, f"{name}.py")


def controller_exists(job_type) -> bool:
	path = file_path(job_type)
	return bool(path and os.path.exists(path))


def validate_explicit_path(path: str) -> None:
	"""An explicit controller path must be a dotted module path inside an installed app."""
	if not DOTTED_PATH.match(path or ""):
		frappe.throw(_("Controller {0} is not a dotted module path").format(path), SyncControllerError)
	if path.split(".", 1)[0] not in frappe.get_installed_apps():
		frappe.throw(_("Controller {0} is not inside an installed app").format(path), SyncControllerError)
	if not _find_spec(path):
		frappe.throw(_("Controller module {0} does not exist").format(path), SyncControllerError)


def load(job_type) -> tuple[ModuleType, Shape]:
	"""Import the controller and return it with its shape; SyncControllerError when unusable."""
	path = module_path(job_type)
	if job_type.get("controller"):
		validate_explicit_path(path)
	try:
		module = importlib.import_module(path)
	except ModuleNotFoundError as e:
		if e.name and path.startswith(e.name):
			frappe.throw(
				_(
					"Controller {0} of Sync Job Type {1} not found. Save the type in developer mode to generate it."
				).format(path, job_type.name),
				SyncControllerError,
			)
		raise
	problems = shape_problems(module)
	shape = controller_shape(module)
	if problems:
		frappe.throw(
			_("Controller {0} is not a valid sync controller: {1}").format(path, "; ".join(problems)),
			SyncControllerError,
		)
	return module, shape


def problems(job_type) -> list[str]:
	"""What is wrong with the type's controller, for warnings and `doctor`; empty when all is well."""
	# load() throws, which also queues a message for the user: the caller decides what to show
	shown = len(frappe.local.message_log)
	try:
		load(job_type)
	except SyncControllerError as e:
		return [str(e)]
	except Exception as e:
		return [_("Controller {0} fails to import: {1}").format(module_path(job_type), repr(e))]
	finally:
		del frappe.local.message_log[shown:]
	return []


def _find_spec(path: str):
	try:
		return importlib.util.find_spec(path)
	except (ImportError, ValueError):
		return None
