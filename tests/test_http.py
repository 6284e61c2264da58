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
