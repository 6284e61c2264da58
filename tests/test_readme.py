"""The README's samples are true: the Python ones run, the shell ones name real commands and options."""

import inspect
import os
import re
import subprocess
import textwrap

import frappe
import pytest
from click.testing import CliRunner

from sync_tweaks.demo import setup, todo_to_note
from tests.conftest import REAL_SITE
from tests.utils import run_queued

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def python_samples() -> list[str]:
	text = open(README).read()
	return [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", text, re.S)]


def test_every_python_sample_is_covered():
	assert len(python_samples()) == 4


def test_controller_sample_is_the_demo_controller():
	controller = python_samples()[0]
	assert controller.strip() in inspect.getsource(todo_to_note)


def test_demo_type_syncs_a_todo_into_a_note():
	name = setup.create_demo()
	run_queued()
	job = frappe.get_doc("Sync Job", name)
	assert job.status == "Finished", job.error_message
	todo = frappe.get_doc("ToDo", job.source_document_name)
	assert frappe.db.get_value("Note", {"title": todo.name}, "content") == todo.description


def test_doc_hook_and_dry_run_samples_run():
	hook, dry_run = python_samples()[1], python_samples()[2]
	namespace = {}
	exec(hook, namespace)
	setup.create_demo()
	run_queued()
	todo = frappe.get_doc({"doctype": "ToDo", "description": "changed in a test"}).insert()
	namespace["on_todo_update"](todo)
	frappe.db.commit()
	run_queued()
	note = frappe.db.get_value("Note", {"title": todo.name}, "content")
	assert note == "changed in a test"
	namespace["todo"] = todo
	exec(dry_run, namespace)
	frappe.db.commit()
	run_queued()
	job = namespace["job"]
	job.reload()
	assert (job.status, job.dry_run) == ("Skipped", 1)


def test_external_api_sample_is_the_demo_module_and_handles_429_and_idempotency(site_conf):
	"""The worked example against a local HTTP server: 429 + Retry-After defers, 200 passes the job's
	name as idempotency key, 400 is fatal."""
	import http.server
	import threading

	from sync_tweaks.demo import external_api
	from sync_tweaks.exceptions import SyncJobFatalError, SyncJobRetryAfter

	assert python_samples()[3].strip() == inspect.getsource(external_api).strip()
	answers, seen = [(429, {"Retry-After": "7"}), (200, {}), (400, {})], []

	class Shop(http.server.BaseHTTPRequestHandler):
		def do_POST(self):
			seen.append(
				(self.headers["Idempotency-Key"], self.rfile.read(int(self.headers["Content-Length"])))
			)
			code, headers = answers.pop(0)
			self.send_response(code)
			for key, value in headers.items():
				self.send_header(key, value)
			self.end_headers()

		def log_message(self, *args):
			pass

	server = http.server.HTTPServer(("127.0.0.1", 0), Shop)
	threading.Thread(target=server.serve_forever, daemon=True).start()
	site_conf(shop_api_url=f"http://127.0.0.1:{server.server_port}/orders")
	job, order = frappe._dict(name="job-1", dry_run=0), frappe._dict(name="SO-1", grand_total=10)
	try:
		with pytest.raises(SyncJobRetryAfter) as deferred:
			external_api.execute(job, order)
		assert deferred.value.seconds == 7 and "HTTP 429" in deferred.value.reason
		assert external_api.execute(job, order) == {"operation": "Update"}
		with pytest.raises(SyncJobFatalError):
			external_api.execute(job, order)
	finally:
		server.shutdown()
	assert [key for key, _body in seen] == ["job-1"] * 3 and b'"order": "SO-1"' in seen[0][1]


def bash_samples() -> list[str]:
	text = open(README).read()
	return [textwrap.dedent(block) for block in re.findall(r"```bash\n(.*?)```", text, re.S)]


def sample_lines(marker: str) -> list[str]:
	"""The lines of the bash sample that mentions `marker`, without comments."""
	block = next(block for block in bash_samples() if marker in block)
	return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_two_commands_are_the_ones_ci_and_newcomers_run():
	repo = os.path.join(os.path.dirname(__file__), "..")
	assert sample_lines("scripts/dev-bench") == ["./scripts/dev-bench", "./scripts/test"]
	assert "./scripts/test" in open(os.path.join(repo, ".ci", "run")).read()
	assert "run: ./scripts/test" in open(os.path.join(repo, ".github", "workflows", "ci.yml")).read()
	result = subprocess.run(
		["bash", os.path.join(repo, "scripts", "dev-bench"), "--help"], capture_output=True, text=True
	)
	assert result.returncode == 0, result.stderr
	text = open(README).read()
	for option in sorted(set(re.findall(r"dev-bench[^`\n]*?(--[a-z-]+)", text))):
		assert option in result.stdout, f"README mentions dev-bench {option}, which --help does not list"


def test_real_site_command_is_the_one_the_workflow_runs():
	(command,) = sample_lines("FRAPPE_SITE=")
	workflow = open(os.path.join(os.path.dirname(__file__), "..", ".github", "workflows", "ci.yml")).read()
	portable = command.replace("/work/bench", "$HOME/frappe-bench").replace(
		"/work/main/tests", "$GITHUB_WORKSPACE/tests"
	)
	assert portable in workflow.replace('"', "")


def test_cli_reference_names_real_commands_and_options():
	from sync_tweaks.commands import sync_job

	lines = [line for line in sample_lines("sync-job") if line.startswith("bench --site SITE sync-job")]
	assert len(lines) == len(sync_job.commands), "every sync-job command is documented once"
	for line in lines:
		name = line.split()[4]
		assert name in sync_job.commands, line
		known = {opt for param in sync_job.commands[name].params for opt in param.opts}
		for option in re.findall(r"--[a-z-]+", line.split(" sync-job ", 1)[1]):
			assert option in known, f"{line}: {option} is not an option of sync-job {name}"
		result = CliRunner().invoke(sync_job, [name, "--help"])
		assert result.exit_code == 0, result.output


@pytest.mark.skipif(not REAL_SITE, reason="the bench commands of a real Frappe install")
def test_install_sample_uses_frappe_commands_that_exist():
	from frappe.commands import get_commands

	names = {command.name for command in get_commands()}
	for line in sample_lines("install-app"):
		words = line.split()
		if words[:2] == ["bench", "get-app"]:
			continue  # the bench CLI's own command, not Frappe's
		command = words[3] if words[1] == "--site" else words[1]
		assert command in names, line
