"""Smoke test of benchmarks/run.py: a tiny --quick run prints the table and writes every scenario to JSON.

Only the shape of the output is checked, never timings.
"""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import run
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
# the scenarios a run without --only measures, and the titles of their rows
SCENARIOS = {name for name in run.SCENARIOS if name not in run.ON_REQUEST}
TINY = ["--jobs", "4", "--warmup", "1", "--enqueue-calls", "20", "--bulk-sources", "40"]
TINY += ["--backlogs", "0,20,60", "--dispatch-rounds", "2", "--drain-jobs", "12", "--conflict-jobs", "6"]
TINY += ["--backfill-docs", "20"]


def test_quick_run_prints_a_table_and_writes_every_scenario(host, tmp_path):
	out = tmp_path / "bench.json"
	command = [
		sys.executable,
		os.path.join(ROOT, "benchmarks", "run.py"),
		"--quick",
		"--json",
		str(out),
		*TINY,
	]
	if host.real:
		command += ["--site", host.site, "--sites-path", os.path.abspath(host.sites_path)]
	result = subprocess.run(
		command,
		capture_output=True,
		text=True,
		timeout=120,
		cwd=os.path.abspath(host.sites_path) if host.real else ROOT,
	)
	assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
	assert "| scenario | case | measured | baseline | ratio | target | met |" in result.stdout
	for name in SCENARIOS:
		assert f"| {run.TITLES[name]} |" in result.stdout, name

	report = json.loads(out.read_text())
	assert set(report["scenarios"]) == SCENARIOS
	for name, scenario in report["scenarios"].items():
		assert scenario["rows"], name
		for row in scenario["rows"]:
			assert row["value"] > 0 and row["baseline"] > 0 and row["ratio"] > 0, (name, row)
	assert report["sizes"]["jobs"] == 4
