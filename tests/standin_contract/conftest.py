"""The contract tests run on the suite's host (tests/conftest.py: a real site or the stand-in), alone too.

Where Frappe versions differ, a test asserts the rule of the running one (`frappe_version`).
"""

import re

import frappe
import pytest


@pytest.fixture
def frappe_version() -> tuple[int, ...]:
	"""`frappe.__version__` as numbers: "15.29.2" -> (15, 29, 2), "16.0.0-dev" -> (16, 0, 0)."""
	return tuple(int(re.match(r"\d+", part).group()) for part in frappe.__version__.split(".")[:3])


@pytest.fixture
def start_worker(host):
	"""Run a burst worker on the host's queues until they are empty: `start_worker("default")`."""

	def run(queue="default", timeout=60):
		return host.run_burst_worker(queue, timeout=timeout)

	return run
