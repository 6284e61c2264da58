"""Scheduler state checks of `frappe.utils.scheduler`."""

import frappe
from frappe.utils import cint


def is_scheduler_inactive(verbose=True):
	if frappe.local.conf.maintenance_mode or frappe.local.conf.pause_scheduler:
		return True
	return is_scheduler_disabled(verbose=verbose)


def is_scheduler_disabled(verbose=True):
	if frappe.conf.disable_scheduler:
		return True
	return not cint(frappe.db.get_single_value("System Settings", "enable_scheduler"))


def toggle_scheduler(enable):
	frappe.db.set_single_value("System Settings", "enable_scheduler", int(enable))


def enable_scheduler():
	toggle_scheduler(True)


def disable_scheduler():
	toggle_scheduler(False)


def is_dormant(check_time=None):
	"""Real Frappe checks the last Activity Log; the stand-in has none, so a site is never dormant."""
	return False
