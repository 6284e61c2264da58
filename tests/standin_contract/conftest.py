"""The contract tests run on the suite's host (tests/conftest.py: a real site or the stand-in), alone too."""

import pytest


@pytest.fixture
def start_worker(host):
	"""Run a burst worker on the host's queues until they are empty: `start_worker("default")`."""

	def run(queue="default", timeout=60):
		return host.run_burst_worker(queue, timeout=timeout)

	return run
