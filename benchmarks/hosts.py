"""Where the benchmarks run: tests/servers.py's host (a temporary stand-in site on private Redis, or a
real site with `--site`), plus the benchmark's workers, logged to one file, and site-config changes.

`prepare_path(real)` must run before `import frappe`: it puts the stand-in first on sys.path.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUEUE = "default"
_MISSING = object()

if ROOT not in sys.path:
	sys.path.insert(0, ROOT)
from tests import servers  # noqa: E402
from tests.servers import kill_process_group as stop_process_group  # noqa: E402

prepare_path = servers.use_frappe


class Host(servers.Host):
	"""A connected site plus the worker processes and site-config changes made for the run."""

	def __init__(self, site: str | None = None, sites_path: str = "."):
		super().__init__(site, os.path.abspath(sites_path), standin_site="bench.localhost", developer_mode=0)
		self.workers: list = []
		self.saved_config: dict = {}
		self.log_path = None

	def start(self):
		super().start()
		self.log_path = os.path.join(
			self.directory or tempfile.gettempdir(), f"sync-bench-workers-{os.getpid()}.log"
		)

	def stop(self):
		"""Stop every worker, restore the site config, disconnect, stop private Redis servers."""
		self.stop_workers()
		with contextlib.suppress(Exception):
			self.restore_config()
		super().stop()

	def start_workers(self, count: int, timeout: float = 60):
		"""Start `count` worker processes and wait until RQ lists them on the queue."""
		import frappe

		before = registered_workers()
		log = open(self.log_path, "a")  # noqa: SIM115 (kept open for the children)
		for _ in range(count):
			self.workers.append(self.start_worker(QUEUE, "--quiet", stdout=log, stderr=subprocess.STDOUT))
		log.close()
		deadline = time.monotonic() + timeout
		while registered_workers() < before + count:
			if time.monotonic() > deadline or any(p.poll() is not None for p in self.workers):
				raise RuntimeError(f"workers did not start; see {self.log_path}")
			time.sleep(0.1)
		# the dispatcher caches the worker count for a few seconds
		frappe.cache().delete_value(f"sync_tweaks:workers:{QUEUE}")

	def stop_workers(self):
		import frappe

		for process in self.workers:
			stop_process_group(process)
		self.workers = []
		with contextlib.suppress(Exception):
			registered_workers()
			frappe.cache().delete_value(f"sync_tweaks:workers:{QUEUE}")

	def set_config(self, key: str, value):
		"""Write `key` to site_config.json (atomically: workers read it at every job) and to frappe.conf."""
		import frappe

		path = os.path.join(self.sites_path, self.site, "site_config.json")
		with open(path) as f:
			config = json.load(f)
		self.saved_config.setdefault(key, config.get(key, _MISSING))
		if value is _MISSING:
			config.pop(key, None)
			frappe.local.conf.pop(key, None)
		else:
			config[key] = value
			frappe.local.conf[key] = value
		temporary = path + f".bench-{os.getpid()}"
		with open(temporary, "w") as f:
			json.dump(config, f, indent=1, sort_keys=True)
		shutil.copymode(path, temporary)
		stat = os.stat(path)
		with contextlib.suppress(PermissionError):
			os.chown(temporary, stat.st_uid, stat.st_gid)
		os.replace(temporary, path)

	def restore_config(self):
		for key, value in list(self.saved_config.items()):
			self.set_config(key, value)
		self.saved_config = {}

	def tail_log(self, lines: int = 30) -> str:
		try:
			with open(self.log_path) as f:
				return "".join(f.readlines()[-lines:])
		except OSError:
			return ""


def registered_workers() -> int:
	"""Live RQ workers on the benchmark queue (a SIGKILLed worker stays registered for minutes)."""
	from sync_tweaks.queue import workers

	return len(workers.live_workers(QUEUE))
