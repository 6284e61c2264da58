"""Private services for tests and benchmarks (no Frappe here: importable before `frappe` is chosen)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time


class RedisServer:
	"""A private redis-server on a free loopback port (never the shared 6379)."""

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


def worker_command(real: bool, site: str, sites_path: str, queues: str) -> list[str]:
	"""`bench worker` on a real site (run from its sites folder), or the stand-in's worker."""
	if real:
		command = [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site, "worker"]
	else:
		standin_worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin", "worker.py")
		command = [sys.executable, standin_worker, "--sites-path", sites_path]
	return [*command, "--queue", queues]
