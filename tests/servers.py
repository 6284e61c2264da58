"""Where the tests and the benchmarks run: one host bootstrap for both.

A host is a real Frappe site (tests: FRAPPE_SITE, benchmarks: --site; run from the bench's sites/
folder with the bench's Python) or the in-repo stand-in: a temporary site on two private redis-servers
(cache and queue) on free loopback ports, never the shared 6379. `use_frappe(real)` must run before
`import frappe`; nothing else here imports Frappe at module level. `Host.stop()` stops what
`Host.start()` started; worker processes run in their own process group for `kill_process_group`.
"""

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
STANDIN = os.path.join(TESTS, "standin")
TEST_APP = os.path.join(TESTS, "test_app")
APPS = ["sync_tweaks", "sync_tweaks_tests"]


def real_frappe_importable() -> bool:
	"""A Frappe install (not the stand-in) is importable: the bench's Python."""
	try:
		import frappe
	except ImportError:
		return False
	return "standin" not in (getattr(frappe, "__file__", "") or "")


def use_frappe(real: bool):
	"""Stand-in: put it, the app and the fixture app first on sys.path. Real: the bench's apps come
	first; this checkout is only appended (for `tests` and `benchmarks`)."""
	if real:
		if ROOT not in sys.path:
			sys.path.append(ROOT)
		return
	for path in (TEST_APP, ROOT, STANDIN):
		if path not in sys.path:
			sys.path.insert(0, path)


class RedisServer:
	"""A private redis-server on a free loopback port."""

	def __init__(self, directory: str):
		self.directory = directory
		self.port = free_port()
		self.process = None

	@property
	def url(self) -> str:
		return f"redis://127.0.0.1:{self.port}"

	def start(self):
		binary = shutil.which("redis-server") or "/usr/bin/redis-server"
		self.process = subprocess.Popen(
			[binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
			+ ["--dir", self.directory],
			stdout=subprocess.DEVNULL,
			stderr=subprocess.DEVNULL,
		)
		wait_for_port(self.port)

	def stop(self):
		if self.process and self.process.poll() is None:
			self.process.terminate()
			self.process.wait(10)
		self.process = None


class Host:
	"""A connected site: real (`site` given) or a temporary stand-in site named `standin_site`."""

	def __init__(self, site=None, sites_path=".", *, standin_site="test.localhost", developer_mode=1):
		self.real = bool(site)
		self.site = site or standin_site
		self.sites_path = sites_path
		self.developer_mode = developer_mode
		self.directory = None
		self.queue_redis = None
		self.servers: list[RedisServer] = []

	@property
	def name(self) -> str:
		return f"site {self.site}" if self.real else "stand-in"

	def start(self):
		"""Create the stand-in site (on fresh private Redis servers), then connect as Administrator."""
		import frappe

		if not self.real:
			import standin_site

			self.directory = tempfile.mkdtemp(prefix="sync-tweaks-host-")
			cache, self.queue_redis = RedisServer(self.directory), RedisServer(self.directory)
			self.servers = [cache, self.queue_redis]
			for server in self.servers:
				server.start()
			self.sites_path = os.path.join(self.directory, "sites")
			with contextlib.redirect_stdout(io.StringIO()):
				standin_site.create_site(
					self.sites_path,
					self.site,
					redis_url=self.queue_redis.url,
					apps=APPS,
					developer_mode=self.developer_mode,
					extra_config={"redis_cache": cache.url, "redis_queue": self.queue_redis.url},
				)
		frappe.init(site=self.site, sites_path=self.sites_path)
		frappe.connect()
		frappe.set_user("Administrator")

	def stop(self):
		"""Disconnect, stop the private Redis servers and remove the stand-in site."""
		import frappe

		try:
			with contextlib.suppress(Exception):
				frappe.db.rollback()
			frappe.destroy()
		finally:
			for server in self.servers:
				server.stop()
			if self.directory:
				shutil.rmtree(self.directory, ignore_errors=True)

	def worker_command(self, queues: str, *flags: str) -> list[str]:
		"""`bench worker` on a real site (from its sites folder) or the stand-in's; flags: --burst, --quiet."""
		if self.real:
			bench = [sys.executable, "-m", "frappe.utils.bench_helper", "frappe"]
			command = [*bench, "--site", self.site, "worker"]
		else:
			command = [sys.executable, os.path.join(STANDIN, "worker.py"), "--sites-path", self.sites_path]
		return [*command, "--queue", queues, *flags]

	def worker_options(self) -> dict:
		"""subprocess options for a worker: the bench's sites folder, or the stand-in on PYTHONPATH."""
		if self.real:
			return {"cwd": os.path.abspath(self.sites_path)}
		return {"cwd": ROOT, "env": {**os.environ, "PYTHONPATH": os.pathsep.join([STANDIN, ROOT, TEST_APP])}}

	def start_worker(self, queues: str, *flags: str, **popen) -> subprocess.Popen:
		"""A long-running worker in its own process group (stop it with kill_process_group)."""
		return subprocess.Popen(
			self.worker_command(queues, *flags), start_new_session=True, **self.worker_options(), **popen
		)

	def run_burst_worker(self, queues: str, timeout: float = 60) -> subprocess.CompletedProcess:
		"""Run a worker until the queues are empty; its output is captured."""
		return subprocess.run(
			self.worker_command(queues, "--burst", "--quiet"),
			timeout=timeout,
			capture_output=True,
			text=True,
			**self.worker_options(),
		)

	def stop_queue_redis(self):
		import frappe

		if self.real:
			port = frappe.conf.redis_queue.rsplit(":", 1)[1].split("/")[0]
			subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], check=False)
		else:
			self.queue_redis.stop()

	def start_queue_redis(self):
		import frappe

		if self.real:
			conf = os.path.join(os.path.abspath(self.sites_path), "..", "config", "redis_queue.conf")
			subprocess.run(["redis-server", conf, "--daemonize", "yes"], check=True)
			wait_for_port(int(frappe.conf.redis_queue.rsplit(":", 1)[1]))
		else:
			self.queue_redis.start()


def free_port() -> int:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		with socket.socket() as s:
			if s.connect_ex(("127.0.0.1", port)) == 0:
				return
		time.sleep(0.05)
	raise RuntimeError(f"nothing listens on port {port}")


def kill_process_group(process, sig=signal.SIGTERM, timeout: float = 20):
	"""Stop a process started with start_new_session=True and everything it forked."""
	if process.poll() is not None:
		return
	try:
		os.killpg(process.pid, sig)
		process.wait(timeout)
	except subprocess.TimeoutExpired:
		os.killpg(process.pid, signal.SIGKILL)
		process.wait(5)
	except ProcessLookupError:
		pass
