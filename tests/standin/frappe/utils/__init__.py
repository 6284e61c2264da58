"""`frappe.utils`: re-exports `frappe.utils.data` plus process helpers."""

import os
import sys
import traceback
from collections import deque

import frappe
from frappe.utils.data import *  # noqa: F403


class CallbackManager:
	"""Queue of callables run in order of addition (e.g. `frappe.db.after_commit`)."""

	__slots__ = ("_functions",)

	def __init__(self):
		self._functions = deque()

	def add(self, func):
		self._functions.append(func)

	def __call__(self, func):
		self.add(func)

	def run(self):
		while self._functions:
			self._functions.popleft()()

	def reset(self):
		self._functions.clear()


def get_bench_path():
	"""Like Frappe's, also outside a site context (RQ's registry cleanup runs failure callbacks there)."""
	sites_path = getattr(frappe.local, "sites_path", None) or "."
	return os.environ.get("FRAPPE_BENCH_ROOT") or os.path.realpath(os.path.join(sites_path, ".."))


def get_bench_id():
	return frappe.get_conf().get("bench_id", get_bench_path().strip("/").replace("/", "-"))


def get_sites(sites_path=None):
	"""The folders of `sites_path` that hold a site_config.json."""
	path = sites_path or getattr(frappe.local, "sites_path", None) or "."
	return sorted(s for s in os.listdir(path) if os.path.isfile(os.path.join(path, s, "site_config.json")))


def get_traceback(with_context=False):
	exc_type, exc_value, exc_tb = sys.exc_info()
	if not any([exc_type, exc_value, exc_tb]):
		return ""
	return "".join(traceback.format_exception(exc_type, exc_value, exc_tb))


def update_progress_bar(txt, i, l, absolute=False):
	"""Print a console progress bar unless in a request (same output as Frappe)."""
	if os.environ.get("CI"):
		if i == 0:
			sys.stdout.write(txt)
		sys.stdout.write(".")
		sys.stdout.flush()
		return
	if not getattr(frappe.local, "request", None):
		col = 40
		if len(txt) < 36:
			txt = txt + " " * (36 - len(txt))
		complete = int(float(i + 1) / l * col)
		bar = ("=" * complete).ljust(col, " ")
		status = f"{i} of {l}" if absolute else f"{int(float(i + 1) / l * 100)!s}%"
		sys.stdout.write(f"\r{txt}: [{bar}] {status}")
		sys.stdout.flush()
