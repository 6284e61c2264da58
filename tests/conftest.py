"""Picks the host for the suite: a real Frappe site (FRAPPE_SITE set, run from the bench's sites/
folder with the bench's Python) or the in-repo stand-in with a private Redis."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
STANDIN = os.path.join(TESTS, "standin")
TEST_APP = os.path.join(TESTS, "test_app")


def _real_frappe_available() -> bool:
	if not os.environ.get("FRAPPE_SITE"):
		return False
	try:
		import frappe  # noqa: F401
	except ImportError:
		return False
	return "standin" not in (getattr(sys.modules["frappe"], "__file__", "") or "")


REAL_SITE = _real_frappe_available()
if not REAL_SITE:
	sys.path.insert(0, STANDIN)
	for path in (ROOT, TEST_APP):
		if path not in sys.path:
			sys.path.insert(0, path)

import frappe  # noqa: E402

from tests.servers import (  # noqa: E402
	RedisServer,
	free_port,
	kill_process_group,
	wait_for_port,
	worker_command,
)


class Host:
	"""What tests need to know about where they run."""

	def __init__(self, real: bool, site: str, sites_path: str, queue_redis: RedisServer | None):
		self.real = real
		self.site = site
		self.sites_path = sites_path
		self.queue_redis = queue_redis

	def worker_command(self, queues: str) -> list[str]:
		return worker_command(self.real, self.site, self.sites_path, queues)

	def stop_queue_redis(self):
		if self.real:
			_redis_cli(frappe.conf.redis_queue, "shutdown", "nosave")
		else:
			self.queue_redis.stop()

	def start_queue_redis(self):
		if self.real:
			conf = os.path.join(os.path.abspath(self.sites_path), "..", "config", "redis_queue.conf")
			subprocess.run(["redis-server", conf, "--daemonize", "yes"], check=True)
			wait_for_port(int(frappe.conf.redis_queue.rsplit(":", 1)[1]))
		else:
			self.queue_redis.start()


@pytest.fixture(scope="session", autouse=True)
def host():
	if REAL_SITE:
		site, sites_path = os.environ["FRAPPE_SITE"], os.environ.get("FRAPPE_SITES_PATH", ".")
		frappe.init(site=site, sites_path=sites_path)
		frappe.connect()
		the_host = Host(True, site, sites_path, None)
		servers = []
	else:
		import standin_site

		directory = tempfile.mkdtemp(prefix="sync-tweaks-tests-")
		cache, queue = RedisServer(directory), RedisServer(directory)
		servers = [cache, queue]
		for server in servers:
			server.start()
		sites_path, site = os.path.join(directory, "sites"), "test.localhost"
		standin_site.create_site(
			sites_path,
			site,
			redis_url=queue.url,
			apps=["sync_tweaks", "sync_tweaks_tests"],
			extra_config={"redis_cache": cache.url, "redis_queue": queue.url},
		)
		frappe.init(site=site, sites_path=sites_path)
		frappe.connect()
		the_host = Host(False, site, sites_path, queue)
	frappe.flags.in_test = True
	frappe.set_user("Administrator")
	yield the_host
	frappe.db.rollback()
	frappe.destroy()
	for server in servers:
		server.stop()
	if not REAL_SITE:
		shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def clean_state(host):
	"""Each test starts as Administrator with no fixture jobs, no recorded events and empty queues."""
	from tests.utils import reset_state

	frappe.set_user("Administrator")
	reset_state()
	yield
	frappe.set_user("Administrator")
	frappe.db.rollback()
	reset_state()


@pytest.fixture
def site_conf():
	"""Set site config keys in this process for one test: `site_conf(sync_job_batch_size=8)`."""
	changed = set()

	def set_keys(**values):
		changed.update(values)
		frappe.conf.update(values)

	yield set_keys
	for key in changed:
		frappe.conf.pop(key, None)


@pytest.fixture
def workers(host):
	"""Start real worker processes: `workers(2)`; all are stopped (process group) at teardown."""
	started = []

	def start(count: int = 1, queues: str = "default,short,long"):
		for _ in range(count):
			process = subprocess.Popen(
				host.worker_command(queues),
				cwd=host.sites_path if host.real else ROOT,
				start_new_session=True,
				env={**os.environ, "PYTHONPATH": os.pathsep.join([STANDIN, ROOT, TEST_APP])}
				if not host.real
				else None,
			)
			started.append(process)
		time.sleep(0.5)
		return started[-count:]

	yield start
	for process in started:
		stop_process_group(process)


def stop_process_group(process, sig=signal.SIGTERM):
	kill_process_group(process, sig, timeout=15)
	forget_dead_workers()


def forget_dead_workers():
	"""Drop RQ registrations of this host's workers whose process is gone (a SIGKILL leaves them behind)."""
	from frappe.utils.background_jobs import get_redis_conn
	from rq import Worker
	from rq.worker_registration import unregister

	connection = get_redis_conn()
	for worker in Worker.all(connection=connection):
		if worker.hostname != socket.gethostname() or not worker.pid:
			continue
		try:
			os.kill(worker.pid, 0)
		except ProcessLookupError:
			unregister(worker)
			connection.delete(worker.key)
		except PermissionError:
			pass  # alive, owned by another user


def _redis_cli(url: str, *args):
	port = url.rsplit(":", 1)[1].split("/")[0]
	subprocess.run(["redis-cli", "-p", port, *args], check=False)
