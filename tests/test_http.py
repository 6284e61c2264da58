"""The endpoints over real HTTP, through Frappe's WSGI application (real site only: the stand-in has no web server)."""

import os
import subprocess
import sys
import time

import frappe
import pytest
import requests

from tests.conftest import REAL_SITE, stop_process_group
from tests.servers import free_port
from tests.test_security import as_user
from tests.utils import make_source

pytestmark = pytest.mark.skipif(not REAL_SITE, reason="needs Frappe's WSGI application on a real site")
ENQUEUE = "/api/method/sync_tweaks.utils.sync_job.enqueue"
PASSWORD = "Sync-Tweaks-Test-9!"


@pytest.fixture(scope="module")
def server(host):
	port = free_port()
	gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
	process = subprocess.Popen(
		[gunicorn, "-b", f"127.0.0.1:{port}", "-w", "1", "frappe.app:application"],
		cwd=host.sites_path,
		start_new_session=True,
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
	)
	url = f"http://127.0.0.1:{port}"
	deadline = time.monotonic() + 30
	while time.monotonic() < deadline:
		try:
			requests.get(url + "/api/method/ping", headers={"Host": host.site}, timeout=2)
			break
		except requests.ConnectionError:
			time.sleep(0.3)
	yield url, host.site
	stop_process_group(process)


def session_for(server, email: str | None, roles=()):
	url, site = server
	session = requests.Session()
	session.headers["Host"] = site
	if email:
		with as_user(email, list(roles)):
			pass
		from frappe.utils.password import update_password

		update_password(email, PASSWORD)
		frappe.db.commit()
		response = session.post(url + "/api/method/login", data={"usr": email, "pwd": PASSWORD}, timeout=10)
		assert response.status_code == 200, response.text
	return session


def test_enqueue_over_http_checks_permissions(server):
	url, _ = server
	source = make_source()
	args = {"sync_job_type": "Test Single Sync", "source_document_name": source.name}
	before = frappe.db.count("Sync Job")

	assert session_for(server, None).post(url + ENQUEUE, data=args, timeout=10).status_code == 403
	plain = session_for(server, "http-plain@example.com")
	assert plain.post(url + ENQUEUE, data=args, timeout=10).status_code == 403
	no_source = session_for(server, "http-sm@example.com", ["System Manager"])
	assert no_source.post(url + ENQUEUE, data=args, timeout=10).status_code == 403
	frappe.db.rollback()
	assert frappe.db.count("Sync Job") == before

	allowed = session_for(server, "http-sm-tester@example.com", ["System Manager", "Sync Tester"])
	assert allowed.get(url + ENQUEUE, params=args, timeout=10).status_code == 403, "state changes need POST"
	response = allowed.post(url + ENQUEUE, data=args, timeout=10)
	assert response.status_code == 200, response.text
	name = response.json()["message"]["name"]
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", name, ["source_document_name", "trigger_type"]) == (
		source.name,
		"API",
	)


@pytest.fixture
def if_owner_role():
	"""A role that may read, write and create only the Sync Jobs its users own."""
	from frappe.permissions import add_permission, reset_perms, update_permission_property

	role = "Sync Job Owner Operator"
	if not frappe.db.exists("Role", role):
		frappe.get_doc({"doctype": "Role", "role_name": role, "desk_access": 1}).insert(
			ignore_permissions=True
		)
	add_permission("Sync Job", role, 0)
	for ptype in ("read", "write", "create", "if_owner"):
		update_permission_property("Sync Job", role, 0, ptype, 1)
	frappe.db.commit()
	frappe.clear_cache(doctype="Sync Job")
	yield role
	reset_perms("Sync Job")
	frappe.db.commit()
	frappe.clear_cache(doctype="Sync Job")


def test_doc_methods_over_http_check_the_stored_owner_for_if_owner_roles(server, if_owner_role):
	url, _ = server
	from sync_tweaks.utils.sync_job import create_sync_job

	with as_user("http-sm-first@example.com", ["System Manager"]):
		pass  # Frappe 15.29 makes the first desk user System Manager: let it be someone else
	owner = session_for(server, "http-owner@example.com", [if_owner_role])
	intruder = session_for(server, "http-intruder@example.com", [if_owner_role])
	frappe.set_user("http-owner@example.com")
	try:
		job = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
		frappe.db.commit()
	finally:
		frappe.set_user("Administrator")
	copy = frappe.get_doc("Sync Job", job.name).as_dict()
	copy["owner"] = "http-intruder@example.com"  # an edited copy claiming the intruder owns it
	docs = frappe.as_json(copy)
	method = url + "/api/method/run_doc_method"
	response = intruder.post(method, data={"docs": docs, "method": "cancel_sync"}, timeout=10)
	assert response.status_code == 403, response.text
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Pending"
	response = owner.post(
		method, data={"docs": frappe.as_json(job.as_dict()), "method": "cancel_sync"}, timeout=10
	)
	assert response.status_code == 200, response.text
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Canceled"
