"""The "Sync Tweaks" workspace, its number cards and chart: standard records whose filters, links and
chart source point at real Sync Job fields, statuses and methods (files on both hosts, records on a site)."""

import glob
import json
import os
import shutil
import subprocess
from datetime import timedelta

import frappe
import pytest
from frappe.utils import getdate, now_datetime

from sync_tweaks import stats
from sync_tweaks.engine.status import SyncJobStatus
from sync_tweaks.utils.sync_job import create_sync_job
from tests.utils import make_source

MODULE_PATH = os.path.join(os.path.dirname(__file__), "..", "sync_tweaks", "sync_tweaks")
FOLDERS = {
	"workspace": "Workspace",
	"number_card": "Number Card",
	"dashboard_chart": "Dashboard Chart",
	"dashboard_chart_source": "Dashboard Chart Source",
}
STANDARD_FIELDS = {"name", "creation", "modified", "owner", "modified_by", "docstatus"}
CHART_TYPES = ("Count", "Sum", "Average", "Group By", "Custom", "Report")  # Frappe 15's Dashboard Chart


def records(folder: str) -> list[dict]:
	paths = sorted(glob.glob(os.path.join(MODULE_PATH, folder, "*", "*.json")))
	return [json.load(open(path)) | {"_path": path} for path in paths]


def by_name(folder: str) -> dict[str, dict]:
	return {record["name"]: record for record in records(folder)}


def test_records_are_standard_and_live_in_folders_named_after_them():
	assert set(by_name("workspace")) == {"Sync Tweaks"}
	assert len(records("number_card")) == 4 and len(records("dashboard_chart")) == 1
	for folder, doctype in FOLDERS.items():
		for record in records(folder):
			folder_name, file_name = record["_path"].split(os.sep)[-2:]
			assert record["doctype"] == doctype
			assert frappe.scrub(record["name"]) == folder_name == file_name.removesuffix(".json")
			assert record["module"] == "Sync Tweaks"
			if folder in ("number_card", "dashboard_chart"):
				assert (record["is_standard"], record["is_public"]) == (1, 1)
	assert by_name("workspace")["Sync Tweaks"]["public"] == 1


def test_number_card_filters_name_real_fields_and_statuses():
	fields = {df.fieldname for df in frappe.get_meta("Sync Job").fields} | STANDARD_FIELDS
	statuses = {status.value for status in SyncJobStatus}
	for card in records("number_card"):
		assert (card["type"], card["document_type"], card["function"]) == (
			"Document Type",
			"Sync Job",
			"Count",
		)
		for doctype, fieldname, _operator, value, *_rest in card_filters(card):
			assert doctype == "Sync Job" and fieldname in fields, card["name"]
			if fieldname == "status":
				assert set(value if isinstance(value, list) else [value]) <= statuses


@pytest.mark.parametrize("card", [c["name"] for c in records("number_card")])
def test_number_card_counts_what_its_label_says(card):
	record = by_name("number_card")[card]
	now = now_datetime()
	for status, ended_at in (
		("Failed", now),
		("Failed", now - timedelta(days=2)),
		("Finished", now),
		("Finished", now - timedelta(days=2)),
		("Waiting", None),
		("Queued", None),
		("Pending", None),
		("Conflict", now - timedelta(days=5)),
		("Canceled", now),
	):
		job = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
		frappe.db.set_value("Sync Job", job.name, {"status": status, "ended_at": ended_at})
	filters = card_filters(record) + [["Sync Job", "sync_job_type", "=", "Test Single Sync"]]
	expected = {
		"Sync Jobs Failed Last Day": 1,
		"Sync Jobs Finished Last Day": 1,
		"Sync Jobs Waiting or Queued": 2,
		"Sync Jobs Open Conflicts": 1,
	}
	assert len(frappe.get_all("Sync Job", filters=filters)) == expected[card]


def test_dynamic_filters_are_javascript_expressions():
	node = shutil.which("node")
	assert node, "node is needed to check the number cards' dynamic filters"
	for card in records("number_card"):
		for _doctype, _field, _op, expression in json.loads(card["dynamic_filters_json"]):
			result = subprocess.run(
				[node, "--check", "-"], input=f"({expression});", text=True, capture_output=True
			)
			assert result.returncode == 0, result.stderr


def test_chart_uses_its_custom_source_with_a_colour_per_status():
	chart = by_name("dashboard_chart")["Sync Jobs per Status"]
	assert chart["chart_type"] in CHART_TYPES and chart["chart_type"] == "Custom"
	assert chart["source"] in by_name("dashboard_chart_source")
	assert (chart["timeseries"], chart["time_interval"]) == (1, "Daily")
	options = json.loads(chart["custom_options"])
	assert options["barOptions"]["stacked"] and len(options["colors"]) == len(SyncJobStatus)
	config = open(
		os.path.join(MODULE_PATH, "dashboard_chart_source", "sync_jobs_per_status", "sync_jobs_per_status.js")
	).read()
	assert 'chart_sources["Sync Jobs per Status"]' in config
	assert 'method: "sync_tweaks.stats.jobs_per_status_chart"' in config
	assert stats.jobs_per_status_chart in frappe.whitelisted


def test_chart_source_counts_jobs_per_status_per_day():
	for status in ("Finished", "Finished", "Failed"):
		job = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
		frappe.db.set_value("Sync Job", job.name, "status", status)
	old = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
	frappe.db.set_value("Sync Job", old.name, "creation", now_datetime() - timedelta(days=3))
	data = stats.jobs_per_status_chart(
		filters=json.dumps({"sync_job_type": "Test Single Sync"}), timespan="Last Week", time_interval="Daily"
	)
	assert len(data["labels"]) == 8 and data["labels"][-1] == str(getdate(now_datetime()))
	values = {dataset["name"]: dataset["values"] for dataset in data["datasets"]}
	assert list(values) == [status.value for status in SyncJobStatus]
	assert (values["Finished"][-1], values["Failed"][-1], values["Pending"][-4]) == (2, 1, 1)
	weekly = stats.jobs_per_status_chart(
		filters={"sync_job_type": "Test Single Sync"}, timespan="Last Month", time_interval="Weekly"
	)
	assert sum(sum(dataset["values"]) for dataset in weekly["datasets"]) == 4


def test_chart_source_needs_read_permission_on_sync_job():
	from tests.test_security import as_user

	with as_user("chart-nobody@example.com", []), pytest.raises(frappe.PermissionError):
		stats.jobs_per_status_chart(timespan="Last Week")


def test_workspace_points_at_existing_doctypes_cards_and_charts():
	workspace = by_name("workspace")["Sync Tweaks"]
	for shortcut in workspace["shortcuts"]:
		if shortcut["type"] == "Report":  # a standard report of this app (a record once migrated)
			folder = os.path.join(MODULE_PATH, "report", frappe.scrub(shortcut["link_to"]))
			assert (
				json.load(open(os.path.join(folder, os.path.basename(folder) + ".json")))["name"]
				== shortcut["link_to"]
			)
			continue
		assert shortcut["type"] == "DocType" and frappe.db.exists("DocType", shortcut["link_to"])
	assert {row["chart_name"] for row in workspace["charts"]} <= set(by_name("dashboard_chart"))
	assert {row["number_card_name"] for row in workspace["number_cards"]} == set(by_name("number_card"))
	labels = {
		"shortcut": {row["label"] for row in workspace["shortcuts"]},
		"chart": {row["label"] for row in workspace["charts"]},
		"number_card": {row["label"] for row in workspace["number_cards"]},
	}
	placed = {kind: set() for kind in labels}
	for block in json.loads(workspace["content"]):
		if block["type"] in labels:
			placed[block["type"]].add(block["data"][f"{block['type']}_name"])
	assert placed == labels  # every widget is placed, and every placed block finds its row by label


def test_records_exist_on_the_site_after_migrate(host):
	if not host.real:
		pytest.skip("the stand-in has no Workspace, Number Card or Dashboard Chart doctypes")
	from frappe.desk.desktop import get_desktop_page

	for folder, doctype in FOLDERS.items():
		for name in by_name(folder):
			assert frappe.db.exists(doctype, name), f"{doctype} {name}: run `bench migrate`"
	page = get_desktop_page(json.dumps({"name": "Sync Tweaks", "title": "Sync Tweaks"}))
	assert {item.label for item in page["shortcuts"]["items"]} == {
		"Sync Job",
		"Sync Job Type",
		"Failures by Cause",
	}
	assert frappe.db.exists("Report", "Sync Job Failures")
	assert len(page["number_cards"]["items"]) == 4 and len(page["charts"]["items"]) == 1


def card_filters(card: dict) -> list[list]:
	"""Static filters plus the dynamic ones with the value their expression yields (24 h ago)."""
	dynamic = json.loads(card.get("dynamic_filters_json") or "[]")
	day_ago = now_datetime() - timedelta(days=1)
	return json.loads(card["filters_json"]) + [[dt, field, op, day_ago] for dt, field, op, _expr in dynamic]
