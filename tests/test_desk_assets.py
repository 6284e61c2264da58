"""Desk scripts parse and stay short (STYLE.md: under 100 lines), and the list view knows every status."""

import glob
import os
import shutil
import subprocess

import pytest

from sync_tweaks.engine.status import SyncJobStatus

APP = os.path.join(os.path.dirname(__file__), "..", "sync_tweaks")
SCRIPTS = sorted(glob.glob(os.path.join(APP, "**", "*.js"), recursive=True))


@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_script_parses_with_node(path):
	node = shutil.which("node")
	assert node, "node is needed to check Desk scripts"
	result = subprocess.run([node, "--check", path], capture_output=True, text=True)
	assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_script_stays_under_100_lines(path):
	with open(path) as f:
		assert len(f.readlines()) < 100


def test_list_view_has_an_indicator_for_every_status():
	source = open(os.path.join(APP, "sync_tweaks", "doctype", "sync_job", "sync_job_list.js")).read()
	for status in SyncJobStatus:
		assert f"{status.value}:" in source or f'"{status.value}":' in source
