"""The README's Python samples are the demo's real code, and they work."""

import inspect
import os
import re
import textwrap

import frappe

from sync_tweaks.demo import setup, todo_to_note
from tests.utils import run_queued

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def python_samples() -> list[str]:
	text = open(README).read()
	return [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", text, re.S)]


def test_every_python_sample_is_covered():
	assert len(python_samples()) == 3


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
