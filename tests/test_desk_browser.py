"""Desk in a real browser (real site only): the Sync Job form follows a job live, Queued -> Started ->
Finished, without a reload, also with socket.io blocked or reconnected; the list view follows new jobs
Waiting -> Queued -> Finished; the follow-job dialog stops polling at a final status and when closed;
the Sync Job Type form shows its buttons; a finished job shows its diff.

The module starts what a user's bench runs: gunicorn (with DEV_SERVER=1, as `bench start` does, so
the browser talks to the socket.io server on its own port), Frappe's node socket.io server on a free
port, and an RQ worker when a test needs one. Chromium (Debian's package) is driven by Playwright.
Screenshots go to /tmp/desk-*.png.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

import frappe
import pytest
import requests

from sync_tweaks.utils.sync_job import enqueue_sync_job, get_status
from tests.conftest import REAL_SITE, stop_process_group
from tests.servers import free_port, wait_for_port
from tests.test_security import as_user
from tests.utils import make_source, run_queued, set_type, wait_for_status

CHROMIUM = os.environ.get("SYNC_TWEAKS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("SYNC_TWEAKS_SCREENSHOTS", tempfile.gettempdir())
USER = "desk-browser@example.com"
PASSWORD = "Sync-Tweaks-Desk-9!"
SLOW = "Test Slow Sync"
BROKEN = "Test Broken Sync"
GET_STATUS = "sync_tweaks.utils.sync_job.get_status"


def _why_not() -> str | None:
	"""Why this module cannot run here (None: it can)."""
	if not REAL_SITE:
		return "needs a real site: Desk, gunicorn and Frappe's socket.io server"
	if not os.access(CHROMIUM, os.X_OK):
		return f"needs chromium at {CHROMIUM} (as root: apt-get install -y chromium)"
	try:
		import playwright.sync_api  # noqa: F401
	except ImportError:
		return "needs Playwright in the bench env (as the bench user: BENCH/env/bin/pip install playwright)"
	if not shutil.which("node"):
		return "needs node for Frappe's socket.io server"
	site = os.environ["FRAPPE_SITE"]
	try:
		addresses = {info[4][0] for info in socket.getaddrinfo(site, None, socket.AF_INET)}
	except OSError:
		addresses = set()
	if not any(address.startswith("127.") for address in addresses):
		# the socket.io server authenticates each browser by calling the site at its name
		return (
			f"{site} must resolve to 127.0.0.1 (add '127.0.0.1 {site}' to /etc/hosts; scripts/dev-bench does)"
		)
	return None


WHY_NOT = _why_not()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT or "")]

# Two changes to the boot info each Desk page receives, before any page script reads it:
# - the browser reaches socket.io at boot.socketio_port (common_site_config, 9000 on a bench, cached
#   in the user's boot); the test's server listens on a free port instead;
# - a site whose setup wizard never ran (a fresh dev-bench site: no time zone yet) sends every Desk
#   route to /app/setup-wizard and shows no navbar; completing the wizard would change site-wide
#   settings under other tests, so this page is told what a completed wizard tells it.
BOOT_SCRIPT = """
(() => {
	const port = %d;
	const frappe = (window.frappe = window.frappe || {});
	let boot;
	Object.defineProperty(frappe, "boot", {
		configurable: true,
		enumerable: true,
		get: () => boot,
		set: (value) => {
			if (value && typeof value === "object") {
				value.socketio_port = port;
				value.setup_complete = 1;
				if (value.home_page === "setup-wizard") value.home_page = "workspace"; // else no navbar
			}
			boot = value;
		},
	});
})();
"""


def _start(command: list[str], cwd: str, log_path: str, **env) -> subprocess.Popen:
	with open(log_path, "ab") as log:
		return subprocess.Popen(
			command,
			cwd=cwd,
			env={**os.environ, **env},
			start_new_session=True,
			stdin=subprocess.DEVNULL,
			stdout=log,
			stderr=subprocess.STDOUT,
		)


def _tail(path: str, lines: int = 30) -> str:
	with open(path, errors="replace") as f:
		return "".join(f.readlines()[-lines:])


@pytest.fixture(scope="module")
def desk(host):
	"""gunicorn + socket.io for this site on free ports; yields (base url, socket.io port)."""
	bench = os.path.dirname(os.path.abspath(host.sites_path))
	logs = tempfile.mkdtemp(prefix="sync-tweaks-desk-")
	web_port, socketio_port = free_port(), free_port()
	socketio_log, web_log = os.path.join(logs, "socketio.log"), os.path.join(logs, "web.log")
	socketio = _start(
		["node", os.path.join(bench, "apps", "frappe", "socketio.js")],
		bench,
		socketio_log,
		FRAPPE_SOCKETIO_PORT=str(socketio_port),
	)
	gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
	web = _start(
		[gunicorn, "-b", f"127.0.0.1:{web_port}", "-w", "3", "-t", "120"]
		+ ["frappe.app:application_with_statics()"],
		host.sites_path,
		web_log,
		DEV_SERVER="1",
	)
	url = f"http://{host.site}:{web_port}"
	try:
		try:
			wait_for_port(socketio_port, 20)
		except RuntimeError:
			pytest.fail("socket.io server did not start:\n" + _tail(socketio_log))
		deadline = time.monotonic() + 60
		while True:
			try:
				if requests.get(url + "/api/method/ping", timeout=5).ok:
					break
			except requests.ConnectionError:
				pass
			if time.monotonic() > deadline:
				pytest.fail("gunicorn did not answer:\n" + _tail(web_log))
			time.sleep(0.3)
		yield url, socketio_port
	finally:
		stop_process_group(web)
		stop_process_group(socketio)
		shutil.rmtree(logs, ignore_errors=True)


@pytest.fixture(scope="module")
def browser_context(desk):
	from playwright.sync_api import sync_playwright

	url, socketio_port = desk
	with as_user(USER, ["System Manager", "Sync Tester"]):  # Sync Tester reads the test sources
		pass
	from frappe.utils.password import update_password

	update_password(USER, PASSWORD)
	frappe.db.commit()
	with sync_playwright() as playwright:
		browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
		context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 1000})
		context.add_init_script(BOOT_SCRIPT % socketio_port)
		response = context.request.post("/api/method/login", form={"usr": USER, "pwd": PASSWORD})
		assert response.ok, response.text()
		yield context
		context.close()
		browser.close()


@pytest.fixture
def page(browser_context):
	page = browser_context.new_page()
	page.set_default_timeout(30_000)
	page.console_errors = []
	page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
	yield page
	page.close()


def open_form(page, doctype: str, name: str):
	page.goto(f"/app/{frappe.scrub(doctype).replace('_', '-')}/{quote(name)}")
	try:
		page.wait_for_function(
			"([doctype, name]) => window.cur_frm && cur_frm.doctype === doctype && cur_frm.docname === name"
			" && cur_frm.page.wrapper.is(':visible')",
			arg=[doctype, name],
		)
	except Exception as e:
		shot(page, "error")
		raise AssertionError(
			f"{doctype} {name} did not open at {page.url} (see {SCREENSHOTS}/desk-error.png);"
			f" console errors: {page.console_errors}"
		) from e


def indicator(page) -> str:
	"""The status pill next to the form's title, as shown."""
	return page.evaluate(
		"() => cur_frm.page.indicator.is(':visible') ? cur_frm.page.indicator.text().trim() : ''"
	)


def wait_for_indicator(page, status: str, timeout: float = 60_000):
	try:
		page.wait_for_function(
			"(status) => cur_frm.page.indicator.is(':visible') && cur_frm.page.indicator.text().trim() === status",
			arg=status,
			timeout=timeout,
		)
	except Exception as e:
		raise AssertionError(
			f"the form never showed {status!r} (shows {indicator(page)!r}); console errors: {page.console_errors}"
		) from e


def wait_for_realtime(page, doctype: str | None = None, name: str | None = None, timeout: float = 30):
	"""Until an event published to the document's room (without one: the site's) reaches the page:
	socket.io is connected and the form has joined its room (the server checks joins asynchronously)."""
	page.evaluate(
		"() => { window.__desk_probes = 0;"
		" frappe.realtime.on('sync_tweaks_desk_probe', () => window.__desk_probes++); }"
	)
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		frappe.publish_realtime("sync_tweaks_desk_probe", {}, doctype=doctype, docname=name)
		try:
			page.wait_for_function("() => window.__desk_probes > 0", timeout=500)
			return
		except Exception:
			pass
	state = page.evaluate(
		"() => ({connected: !!(frappe.realtime.socket && frappe.realtime.socket.connected)})"
	)
	raise AssertionError(f"no realtime event reached the page in {timeout}s: {state}; {page.console_errors}")


def shot(page, name: str, top: bool = True):
	"""What the user sees in the window (scrolled to the top unless told otherwise)."""
	if top:
		page.evaluate("() => window.scrollTo(0, 0)")
	page.screenshot(path=os.path.join(SCREENSHOTS, f"desk-{name}.png"))


def open_queued_job_form(page, sleep: float):
	"""A committed Queued slow job, its form open in the browser and joined to the job's room."""
	job = enqueue_sync_job(SLOW, source_doc=make_source(), context={"sleep": sleep})
	frappe.db.commit()
	assert wait_for_status([job.name], {"Queued"}, timeout=10)[job.name] == "Queued"
	open_form(page, "Sync Job", job.name)
	wait_for_indicator(page, "Queued")
	wait_for_realtime(page, "Sync Job", job.name)
	return job


def test_sync_job_form_follows_the_job_live_without_reload(page, workers):
	job = open_queued_job_form(page, sleep=3)
	shot(page, "queued")
	# a marker that a reload would wipe, and every status the pill shows from now on
	page.evaluate(
		"""() => {
			window.__desk_marker = "still the same page";
			window.__desk_seen = [cur_frm.page.indicator.text().trim()];
			new MutationObserver(() => {
				const text = cur_frm.page.indicator.text().trim();
				if (text && window.__desk_seen[window.__desk_seen.length - 1] !== text) window.__desk_seen.push(text);
			}).observe(cur_frm.page.indicator[0], { childList: true, subtree: true, characterData: true });
		}"""
	)

	started = time.monotonic()
	workers(1)
	wait_for_indicator(page, "Started")
	shot(page, "started")
	wait_for_indicator(page, "Finished")
	shot(page, "finished")
	print(f"\nQueued -> Finished in the browser {time.monotonic() - started:.1f}s after the worker started")

	state = page.evaluate(
		"""() => ({
			marker: window.__desk_marker,
			seen: window.__desk_seen,
			navigations: performance.getEntriesByType("navigation").length,
			status: cur_frm.doc.status,
			started_at: cur_frm.doc.started_at,
			ended_at: cur_frm.doc.ended_at,
			dirty: cur_frm.is_dirty(),
		})"""
	)
	assert state["marker"] == "still the same page", "the page was reloaded"
	assert state["navigations"] == 1
	assert state["seen"] == ["Queued", "Started", "Finished"], state
	assert state["status"] == "Finished" and state["started_at"] and state["ended_at"], state
	assert not state["dirty"]
	assert wait_for_status([job.name])[job.name] == "Finished"


def test_sync_job_type_form_shows_dry_run_and_enqueue(page):
	open_form(page, "Sync Job Type", "Test Single Sync")
	buttons = page.locator(".page-actions button").filter(visible=True)
	for label in ("Jobs", "Dry Run", "Enqueue"):
		button = buttons.filter(has_text=label)
		button.first.wait_for(state="visible")
		assert button.count() == 1, label
	shot(page, "type-buttons")

	buttons.filter(has_text="Dry Run").click()
	dialog = page.locator(".modal.show .modal-dialog")
	dialog.wait_for(state="visible")
	assert dialog.locator(".modal-title").inner_text().strip() == "Dry Run"
	assert dialog.locator("input[data-fieldname='source_document_name']").is_visible()
	assert "Sync Test Source" in dialog.inner_text()
	shot(page, "type-dry-run-prompt")
	messages = page.locator(".msgprint").filter(visible=True).all_inner_texts()
	assert not messages, messages
	dialog.locator(".btn-modal-close").click()
	dialog.wait_for(state="hidden")


def test_finished_sync_job_shows_its_diff_table(page):
	source = make_source(qty=3, items=[("A", 1)])
	job = enqueue_sync_job("Test Single Sync", source_doc=source)
	frappe.db.commit()
	run_queued()
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Finished"

	open_form(page, "Sync Job", job.name)
	wait_for_indicator(page, "Finished")
	table = page.locator("table.sync-job-diff").filter(visible=True)
	table.wait_for(state="visible")
	assert [th.strip() for th in table.locator("thead th").all_inner_texts()] == ["Field", "Old", "New"]
	rows = [
		[cell.strip() for cell in row.locator("td, th").all_inner_texts()]
		for row in table.locator("tbody tr").all()
	]
	assert ["title", "", source.title] in rows, rows
	assert ["qty", "", "3"] in rows, rows
	assert ["Rows added"] in rows, rows
	table.evaluate("(element) => element.scrollIntoView({block: 'center'})")
	shot(page, "diff", top=False)

	# a finished job is a record: nothing to save, nothing to edit
	assert not page.locator(".primary-action").filter(visible=True).filter(has_text="Save").count()
	assert page.evaluate("() => cur_frm.get_field('context').df.read_only") in (1, "1", True)


def pill(row):
	"""The status indicator a list row shows."""
	return row.locator(".indicator-pill").filter(visible=True).first


def test_list_view_shows_statuses_and_retries_the_selected_jobs(page):
	failed = enqueue_sync_job("Test Single Sync", source_doc=make_source(), context={"fail": "error"})
	finished = enqueue_sync_job("Test Single Sync", source_doc=make_source())
	frappe.db.commit()
	run_queued()
	frappe.db.commit()
	assert wait_for_status([failed.name, finished.name]) == {failed.name: "Failed", finished.name: "Finished"}

	page.goto("/app/sync-job?sync_job_type=Test%20Single%20Sync")
	page.wait_for_function(
		"() => window.cur_list && cur_list.doctype === 'Sync Job' && cur_list.data.length >= 2"
	)
	row = {
		name: page.locator(f".list-row:has(a[data-name='{name}'])") for name in (failed.name, finished.name)
	}
	assert pill(row[failed.name]).inner_text().strip() == "Failed"
	assert pill(row[finished.name]).inner_text().strip() == "Finished"
	assert "red" in pill(row[failed.name]).get_attribute("class")

	row[failed.name].locator("input.list-row-checkbox").check()
	page.locator(".actions-btn-group button").filter(visible=True).first.click()
	page.locator(".actions-btn-group .dropdown-item").filter(has_text="Retry").first.click()
	page.wait_for_function(
		"(name) => cur_list.data.some((d) => d.name === name && d.status !== 'Failed')", arg=failed.name
	)
	assert pill(row[failed.name]).inner_text().strip() in ("Waiting", "Queued"), "the row shows it at once"
	shot(page, "list-after-retry")
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", failed.name, "status") in ("Waiting", "Queued")
	assert frappe.db.get_value("Sync Job", finished.name, "status") == "Finished", "only the selected job"
	menu = page.locator(".menu-btn-group button").filter(visible=True).first
	menu.click()
	assert page.locator(".menu-btn-group .dropdown-item").filter(has_text="Clear All Logs").count() == 1


def requests_to(page, method: str) -> list[float]:
	"""Times of the page's requests to a whitelisted method, growing as they are sent."""
	sent = []
	page.on(
		"request", lambda request: f"/api/method/{method}" in request.url and sent.append(time.monotonic())
	)
	return sent


def socket_connected(page) -> bool:
	return page.evaluate("() => !!(frappe.realtime.socket && frappe.realtime.socket.connected)")


def mark_page(page):
	"""A marker that a reload would wipe (checked by `same_page`)."""
	page.evaluate("() => { window.__desk_marker = 'still the same page'; }")


def same_page(page) -> bool:
	return page.evaluate(
		"() => window.__desk_marker === 'still the same page'"
		" && performance.getEntriesByType('navigation').length === 1"
	)


# every status each watched row's pill shows, in order (the list re-renders rows: read, not observe)
WATCH_PILLS = """(names) => {
	window.__pills = Object.fromEntries(names.map((name) => [name, []]));
	setInterval(() => {
		for (const name of names) {
			const row = cur_list.$result.find(`.list-row:has(a[data-name='${name}'])`);
			const text = row.find(".indicator-pill:visible").first().text().trim();
			const seen = window.__pills[name];
			if (text && seen[seen.length - 1] !== text) seen.push(text);
		}
	}, 50);
}"""


def wait_for_pill(page, name: str, status: str, timeout: float = 60_000):
	try:
		page.wait_for_function(
			"([name, status]) => { const seen = window.__pills[name]; return seen[seen.length - 1] === status; }",
			arg=[name, status],
			timeout=timeout,
		)
	except Exception as e:
		shot(page, "error")
		raise AssertionError(
			f"row {name} never showed {status!r}: {page.evaluate('() => window.__pills')};"
			f" events: {page.evaluate('() => window.__events')}; {page.console_errors}"
		) from e


def open_settled_list(page, path: str):
	"""Open a list and wait until it stops refreshing itself: Frappe refreshes it again once the
	route's Link filter is validated (~2 s after load), and any refresh drops pending list_updates."""
	page.goto(path)
	page.wait_for_function("() => window.cur_list && cur_list.doctype === 'Sync Job'")
	page.evaluate(
		"""() => {
			window.__list_refreshed_at = performance.now();
			const proto = Object.getPrototypeOf(cur_list);
			const refresh = proto.refresh;
			proto.refresh = function (...args) {
				window.__list_refreshed_at = performance.now();
				return refresh.apply(this, args);
			};
		}"""
	)
	page.wait_for_function("() => performance.now() - window.__list_refreshed_at > 2000", timeout=15_000)


def test_list_view_follows_new_jobs_from_waiting_to_finished_without_reload(page, workers):
	open_settled_list(page, "/app/sync-job?sync_job_type=" + quote(SLOW))
	page.locator(".no-result").filter(visible=True).first.wait_for()
	wait_for_realtime(page)
	mark_page(page)
	page.evaluate(
		"() => { window.__events = [];"
		" frappe.realtime.socket.onAny((event, data) => window.__events.push([event, data && data.name, data && data.status])); }"
	)

	# the same source: `first` holds its key, `second` waits in line, and its queue has no worker yet
	source = make_source()
	first = enqueue_sync_job(SLOW, source_doc=source, context={"sleep": 2})
	second = enqueue_sync_job(SLOW, source_doc=source, queue="short", context={"sleep": 2})
	frappe.db.commit()
	assert wait_for_status([first.name, second.name], {"Queued", "Waiting"}, timeout=10) == {
		first.name: "Queued",
		second.name: "Waiting",
	}
	page.evaluate(WATCH_PILLS, [first.name, second.name])
	wait_for_pill(page, first.name, "Queued", timeout=15_000)
	wait_for_pill(page, second.name, "Waiting", timeout=15_000)
	shot(page, "list-live-waiting")

	workers(1, queues="default")
	wait_for_pill(page, first.name, "Finished")
	wait_for_pill(page, second.name, "Queued", timeout=15_000)
	shot(page, "list-live-queued")
	assert wait_for_status([second.name], {"Queued"}, timeout=1)[second.name] == "Queued"

	workers(1, queues="short")
	wait_for_pill(page, second.name, "Finished")
	count = page.locator(".list-count").filter(visible=True).first
	try:
		page.wait_for_function(
			"(element) => element.textContent.trim().startsWith('2 of 2')",
			arg=count.element_handle(),
			timeout=10_000,
		)
	except Exception as e:
		raise AssertionError(
			f"the list count says {count.text_content()!r} above the 2 jobs that arrived"
		) from e
	shot(page, "list-live-finished")
	seen = page.evaluate("() => window.__pills")
	print(f"\nlist rows showed {seen}")
	assert seen[second.name][:2] == ["Waiting", "Queued"], seen
	assert seen[first.name][0] == "Queued", seen
	assert same_page(page), "the list was reloaded"


def enqueue_from_type_form(page, source_name: str):
	"""Sync Job Type form > Enqueue > pick the source: the follow-job dialog opens."""
	page.locator(".page-actions button").filter(visible=True).filter(has_text="Enqueue").first.click()
	prompt = page.locator(".modal.show .modal-dialog").filter(has_text="Enqueue")
	prompt.wait_for(state="visible")
	page.wait_for_function("() => window.cur_dialog && cur_dialog.fields_dict.source_document_name")
	page.evaluate("(name) => cur_dialog.set_value('source_document_name', name)", source_name)
	page.wait_for_function("(name) => cur_dialog.get_value('source_document_name') === name", arg=source_name)
	prompt.locator(".btn-primary").filter(visible=True).first.click()
	dialog = page.locator(".modal.show .modal-dialog").filter(has_text="Sync Job ")
	dialog.locator(".modal-body").filter(has_text="Status").wait_for(state="visible")
	return dialog


def test_follow_job_dialog_stops_polling_when_closed(page):
	open_form(page, "Sync Job Type", "Test Single Sync")
	polls = requests_to(page, GET_STATUS)
	dialog = enqueue_from_type_form(page, make_source().name)
	dialog.locator(".modal-body b").filter(has_text="Queued").wait_for()
	page.wait_for_timeout(3500)  # not time.sleep: Playwright delivers request events in its calls
	assert len(polls) >= 2, "the dialog polls while the job is open"
	dialog.locator(".btn-modal-close").click()
	dialog.wait_for(state="hidden")
	after_close = len(polls)
	page.wait_for_timeout(4000)
	assert len(polls) == after_close, f"{len(polls) - after_close} get_status calls after closing"
	assert not page.console_errors, page.console_errors


@pytest.mark.parametrize(
	"job_type, final", [("Test Single Sync", "Finished"), (BROKEN, "Failed")], ids=["Finished", "Failed"]
)
def test_follow_job_dialog_stops_polling_at_a_final_status(page, job_type, final):
	set_type(job_type, max_retries=0)  # BROKEN's controller has no valid shape: its jobs fail
	open_form(page, "Sync Job Type", job_type)
	polls = requests_to(page, GET_STATUS)
	dialog = enqueue_from_type_form(page, make_source().name)
	name = dialog.locator(".modal-title").inner_text().strip().removeprefix("Sync Job ")
	assert frappe.db.get_value("Sync Job", name, "status") == "Queued"

	run_queued()
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", name, "status") == final
	dialog.locator(".modal-body b").filter(has_text=final).wait_for(timeout=10_000)
	shot(page, f"dialog-{final.lower()}")
	after_final = len(polls)
	page.wait_for_timeout(7000)
	assert len(polls) == after_final, f"{len(polls) - after_final} get_status calls after {final}"
	assert not page.console_errors, page.console_errors


def test_sync_job_form_without_socketio_polls_until_finished(page, workers):
	blocked = []
	page.route(re.compile(r"/socket\.io/"), lambda route: (blocked.append(route.request.url), route.abort()))
	job = enqueue_sync_job(SLOW, source_doc=make_source(), context={"sleep": 2})
	frappe.db.commit()
	assert wait_for_status([job.name], {"Queued"}, timeout=10)[job.name] == "Queued"
	open_form(page, "Sync Job", job.name)
	wait_for_indicator(page, "Queued")
	assert blocked and not socket_connected(page)
	mark_page(page)
	polls = requests_to(page, GET_STATUS)

	workers(1)
	assert wait_for_status([job.name])[job.name] == "Finished"
	finished = time.monotonic()
	wait_for_indicator(page, "Finished", timeout=10_000)
	print(f"\nwithout socket.io the form showed Finished {time.monotonic() - finished:.1f}s after the commit")
	shot(page, "form-no-socketio-finished")
	assert same_page(page) and not socket_connected(page)
	assert polls, "the form polled"
	after_final = len(polls)
	page.wait_for_timeout(7000)
	assert len(polls) == after_final, f"{len(polls) - after_final} get_status calls after Finished"


def test_sync_job_form_rejoins_its_room_after_socketio_reconnects(page, workers):
	job = open_queued_job_form(page, sleep=2)
	old = page.evaluate("() => frappe.realtime.socket.id")
	page.evaluate("() => { frappe.realtime.socket.disconnect(); frappe.realtime.socket.connect(); }")
	page.wait_for_function(
		"(old) => frappe.realtime.socket.connected && frappe.realtime.socket.id !== old", arg=old
	)
	# the server forgot the old connection's rooms; Frappe's client does not join again
	wait_for_realtime(page, "Sync Job", job.name, timeout=10)
	mark_page(page)

	workers(1)
	wait_for_indicator(page, "Started")
	wait_for_indicator(page, "Finished")
	assert same_page(page)


def test_pause_button_pauses_the_type_at_once_and_resume_brings_it_back(page):
	open_form(page, "Sync Job Type", "Test Single Sync")
	buttons = page.locator(".page-actions button").filter(visible=True)
	buttons.filter(has_text="Pause").first.click()
	dialog = page.locator(".modal.show .modal-dialog")
	dialog.wait_for(state="visible")
	dialog.locator("textarea[data-fieldname='reason']").fill("shop maintenance")
	dialog.locator(".btn-primary").filter(has_text="Pause").click()
	page.locator(".form-message").filter(has_text="Paused").first.wait_for(state="visible")
	buttons.filter(has_text="Resume").first.wait_for(state="visible")
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job Type", "Test Single Sync", ["paused", "paused_reason"]) == (
		1,
		"shop maintenance",
	)
	job = enqueue_sync_job("Test Single Sync", source_doc=make_source())
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Waiting", "accepted, not started"
	shot(page, "type-paused")

	buttons.filter(has_text="Resume").first.click()
	buttons.filter(has_text="Pause").first.wait_for(state="visible")
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job Type", "Test Single Sync", "paused") == 0
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Queued", "resume dispatched it"
	assert not page.console_errors, page.console_errors


def test_failures_report_groups_by_cause_and_retries_a_group(page):
	set_type("Test Single Sync", max_retries=0)
	names = [
		enqueue_sync_job(
			"Test Single Sync", source_doc=make_source(), context={"fail_with": f"Item ITEM-{n:04} is locked"}
		).name
		for n in (7, 8, 9)
	]
	other = enqueue_sync_job(
		"Test Single Sync", source_doc=make_source(), context={"fail_with": "disk full"}
	).name
	frappe.db.commit()
	run_queued()
	page.goto("/app/query-report/Sync Job Failures")
	rows = page.locator(".dt-row").filter(has_text="Item <name> is locked")
	try:
		rows.first.wait_for(state="visible")
	except Exception:
		shot(page, "error")
		raise
	text = rows.first.inner_text()
	assert "3" in text and "no retries left" in text and "Test Single Sync" in text, text
	assert page.locator(".dt-row").filter(has_text="disk full").count() >= 1
	shot(page, "failures-report")

	rows.first.locator("input[type='checkbox']").check()
	page.locator(".page-actions button, .inner-group-button button, .btn").filter(
		has_text="Retry All"
	).first.click()
	page.locator(".modal.show .btn-primary").filter(has_text="Yes").click()
	deadline = time.monotonic() + 30
	while time.monotonic() < deadline:
		frappe.db.rollback()
		if {frappe.db.get_value("Sync Job", n, "status") for n in names} <= {"Waiting", "Queued"}:
			break
		time.sleep(0.3)
	assert {frappe.db.get_value("Sync Job", n, "status") for n in names} <= {"Waiting", "Queued"}
	assert frappe.db.get_value("Sync Job", other, "status") == "Failed", "only the selected group"
	shot(page, "failures-report-retried")


def test_parent_form_shows_its_children_progress_live(page, workers):
	from sync_tweaks.queue import worker

	set_type("Test Multi Sync", concurrency="None")
	parent = enqueue_sync_job(
		"Test Multi Sync", source_doc=make_source(items=[("a", 1), ("b", 1), ("c", 1)]), context={"sleep": 1}
	)
	frappe.db.commit()
	frappe.db.rollback()
	worker.run_batch([parent.name], frappe.db.get_value("Sync Job", parent.name, "job_id"))
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", parent.name, "status") == "Relayed"
	open_form(page, "Sync Job", parent.name)
	progress = page.locator(".sync-job-children")
	progress.wait_for(state="visible")
	assert "0 of 3 children done" in progress.inner_text()
	wait_for_realtime(page, "Sync Job", parent.name)
	page.evaluate("() => { window.__desk_marker = 'same page'; }")
	shot(page, "parent-progress-start", top=False)
	workers(2)
	page.wait_for_function(
		"() => (document.querySelector('.sync-job-children') || {}).innerText?.includes('3 of 3 children done')",
		timeout=90_000,
	)
	assert page.evaluate("() => window.__desk_marker") == "same page", "the form was reloaded"
	progress.scroll_into_view_if_needed()
	shot(page, "parent-progress-done", top=False)
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", parent.name, "children_done_at")
