"""Picks the host for the suite (tests/servers.py): a real Frappe site (FRAPPE_SITE set, run from the
bench's sites/ folder with the bench's Python) or the in-repo stand-in on private Redis servers."""

import contextlib
import json
import os
import shutil
import signal
import socket
import time

import pytest

from tests.servers import ROOT, Host, kill_process_group, real_frappe_importable, use_frappe

REAL_SITE = bool(os.environ.get("FRAPPE_SITE")) and real_frappe_importable()
use_frappe(REAL_SITE)

import frappe  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def host():
	if REAL_SITE:
		sites_path = os.environ.get("FRAPPE_SITES_PATH", ".")
		restore_site_config(os.path.join(sites_path, os.environ["FRAPPE_SITE"], "site_config.json"))
		the_host = Host(os.environ["FRAPPE_SITE"], sites_path)
	else:
		the_host = Host()
	the_host.start()
	frappe.flags.in_test = True
	try:
		yield the_host
	finally:
		the_host.stop()


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
def worker_conf():
	"""Set site config keys for this test in site_config.json too, where worker processes read them.
	The file as it was is kept beside it until the test ends: a run killed meanwhile leaves it, and
	the next run starts from it instead of from the killed run's keys."""
	path = os.path.join(frappe.local.site_path, "site_config.json")
	backup = f"{path}.before-test"
	if os.path.exists(backup):
		with open(backup) as f:
			original = f.read()
	else:
		with open(path) as f:
			original = f.read()
		with open(backup, "w") as f:
			f.write(original)
	write_atomically(path, original)
	missing = object()
	saved = {}

	def set_keys(**values):
		with open(path) as f:
			config = json.load(f)
		config.update(values)
		write_atomically(path, json.dumps(config, indent=1, sort_keys=True))
		for key, value in values.items():
			saved.setdefault(key, frappe.conf.get(key, missing))
			frappe.conf[key] = value

	yield set_keys
	write_atomically(path, original)
	os.remove(backup)
	for key, value in saved.items():
		if value is missing:
			frappe.conf.pop(key, None)
		else:
			frappe.conf[key] = value


def restore_site_config(path: str):
	"""A run killed inside `worker_conf` left its keys in site_config.json: put the file back as it was."""
	backup = f"{path}.before-test"
	if os.path.exists(backup):
		with open(backup) as f:
			write_atomically(path, f.read())
		os.remove(backup)


def write_atomically(path: str, text: str):
	"""Replace `path` at once (a worker reads the config at every job), keeping its owner and mode."""
	temporary = f"{path}.test-{os.getpid()}"
	with open(temporary, "w") as f:
		f.write(text)
	shutil.copymode(path, temporary)
	stat = os.stat(path)
	with contextlib.suppress(PermissionError):
		os.chown(temporary, stat.st_uid, stat.st_gid)
	os.replace(temporary, path)


@pytest.fixture
def cli(host):
	"""Run `bench --site SITE sync-job ARGS…` in this process: `cli("stats")` returns click's result."""
	from click.testing import CliRunner

	from sync_tweaks.commands import sync_job

	def invoke(*args):
		obj = {"sites": [host.site], "force": False, "verbose": False, "profile": False}
		result = CliRunner().invoke(sync_job, [str(arg) for arg in args], obj=obj)
		if result.exception and not isinstance(result.exception, SystemExit):
			raise result.exception
		frappe.db.rollback()
		return result

	return invoke


@pytest.fixture
def workers(host):
	"""Start real worker processes: `workers(2)`; all are stopped (process group) at teardown."""
	started = []

	def start(count: int = 1, queues: str = "default,short,long"):
		started.extend(host.start_worker(queues) for _ in range(count))
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
