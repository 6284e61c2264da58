"""PRIVATE DEV CONFTEST for the stand-in contract tests -- merge into tests/conftest.py.

When no site is initialised yet (i.e. the project's tests/conftest.py did not connect one), this starts a
private redis-server on a free port and creates a temporary stand-in site with standin_site.create_site.
It also provides `start_worker`, which runs a burst worker on the site's queues (stand-in worker.py, or
`bench --site SITE worker --burst` on a real bench).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STANDIN = os.path.join(REPO, "tests", "standin")

try:
	import frappe  # noqa: F401
except ImportError:
	sys.path.insert(0, STANDIN)
	import frappe


def _free_port():
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _standin_site():
	if getattr(frappe.local, "site", None):
		yield
		return
	import standin_site

	port = _free_port()
	redis = subprocess.Popen(
		["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--daemonize", "no"],
		stdout=subprocess.DEVNULL,
	)
	tmp = tempfile.mkdtemp(prefix="standin-contract-")
	sites_path = os.path.join(tmp, "sites")
	os.makedirs(sites_path)
	try:
		for _ in range(50):
			try:
				socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
				break
			except OSError:
				time.sleep(0.1)
		standin_site.create_site(
			sites_path, "contract.localhost", redis_url=f"redis://127.0.0.1:{port}", apps=[]
		)
		frappe.init(site="contract.localhost", sites_path=sites_path)
		frappe.connect()
		frappe.set_user("Administrator")
		frappe.flags.in_test = True
		yield
	finally:
		frappe.destroy()
		redis.terminate()
		redis.wait(10)
		shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def start_worker():
	"""Run a burst worker for the current site's bench until its queues are empty."""

	def run(queue="default", timeout=60):
		sites_path = os.path.abspath(frappe.local.sites_path)
		if "standin" in (frappe.__file__ or ""):
			cmd = [sys.executable, os.path.join(STANDIN, "worker.py"), "--sites-path", sites_path]
			path = os.pathsep.join([REPO, os.path.join(REPO, "tests", "test_app")])
			env = dict(os.environ, PYTHONPATH=path)
		else:
			bench = [sys.executable, "-m", "frappe.utils.bench_helper", "frappe"]
			cmd = [*bench, "--site", frappe.local.site, "worker"]
			env = None
		cmd += ["--queue", queue, "--burst", "--quiet"]
		return subprocess.run(cmd, cwd=sites_path, env=env, timeout=timeout, capture_output=True, text=True)

	return run
