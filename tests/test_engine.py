"""Pure logic: status table, request parsing, diffs, backoff, controller shapes."""

import json
import os
import random
import types

import pytest

from sync_tweaks.engine import status as st
from sync_tweaks.engine.backoff import MAX_DELAY_SECONDS, retry_delay_seconds
from sync_tweaks.engine.diff import diff_snapshots, is_empty
from sync_tweaks.engine.request import RequestError, SyncJobRequest, parse_operation
from sync_tweaks.engine.shapes import Shape, controller_shape, shape_problems

DOCTYPE = os.path.join(os.path.dirname(__file__), "..", "sync_tweaks", "sync_tweaks", "doctype")


def test_status_select_options_equal_the_enum():
	meta = json.load(open(os.path.join(DOCTYPE, "sync_job", "sync_job.json")))
	status = next(f for f in meta["fields"] if f["fieldname"] == "status")
	assert status["options"].split("\n") == [s.value for s in st.SyncJobStatus]


def test_transitions_follow_the_spec():
	assert st.can_transition("Pending", "Waiting")
	assert st.can_transition("Failed", "Waiting")
	assert st.can_transition("Waiting", "Canceled")
	assert not st.can_transition("Started", "Canceled")
	assert not st.can_transition("Finished", "Waiting")
	for final in st.FINAL:
		assert not st.TRANSITIONS.get(final), f"{final} must be final"


def test_allowed_actions_per_status():
	assert st.allowed_actions("Pending") == ["start", "cancel_sync", "dry_run_again"]
	assert st.allowed_actions("Failed") == ["cancel_sync", "retry", "dry_run_again"]
	assert "cancel_sync" in st.allowed_actions("Waiting")
	assert st.allowed_actions("Started") == []


@pytest.mark.parametrize(
	"value,expected", [("insert", "Insert"), ("UPDATE", "Update"), (" Delete ", "Delete"), ("", "")]
)
def test_operation_accepts_any_case(value, expected):
	assert parse_operation(value) == expected


@pytest.mark.parametrize("value", ["upsert", "merge", 3, ["Insert"]])
def test_operation_rejects_anything_else(value):
	with pytest.raises(RequestError):
		parse_operation(value)


def test_request_keeps_explicit_zeros_and_leaves_unset_values_out():
	request = SyncJobRequest.parse(
		{
			"sync_job_type": "T",
			"source_document_type": "X",
			"source_document_name": "a",
			"retry_delay": 0,
			"max_retries": 0,
		}
	)
	fields = request.as_doc_fields()
	assert fields["retry_delay"] == 0 and fields["max_retries"] == 0
	assert "timeout" not in fields and "queue" not in fields


def test_request_fills_names_from_documents():
	source = types.SimpleNamespace(doctype="ToDo", name="T-1", modified="2026-01-01 10:00:00")
	request = SyncJobRequest.parse({"sync_job_type": "T", "source_doc": source, "triggered_by_doc": source})
	assert (request.source_document_type, request.source_document_name) == ("ToDo", "T-1")
	assert request.trigger_document_timestamp == "2026-01-01 10:00:00"


@pytest.mark.parametrize(
	"params",
	[
		{"sync_job_type": "T", "context": "[1, 2]"},
		{"sync_job_type": "T", "context": "{not json"},
		{"sync_job_type": "T"},
		{"sync_job_type": "T", "source_document_type": "X", "source_document_name": "a", "timeout": -1},
		{
			"sync_job_type": "T",
			"source_document_type": "X",
			"source_document_name": "a",
			"max_retries": "many",
		},
		{"sync_job_type": "T", "source_document_type": "X", "source_document_name": "a", "surprise": 1},
		{"sync_job_type": "T", "context": {"x": object()}},
		{"sync_job_type": "T", "context": {"big": "x" * (1024 * 1024 + 1)}},
		{"sync_job_type": "", "context": {}},
	],
)
def test_bad_requests_are_refused(params):
	with pytest.raises(RequestError):
		SyncJobRequest.parse(params)


def test_diff_in_version_format():
	old = {
		"fields": {"title": "a", "qty": 1},
		"tables": {
			"items": [
				{"name": "r1", "idx": 1, "item_code": "A", "qty": 1},
				{"name": "r2", "idx": 2, "item_code": "B", "qty": 1},
			]
		},
	}
	new = {
		"fields": {"title": "b", "qty": 1.0},
		"tables": {
			"items": [
				{"name": "r1", "idx": 1, "item_code": "A", "qty": 5},
				{"name": None, "idx": 2, "item_code": "C", "qty": 2},
			]
		},
	}
	diff = diff_snapshots(old, new)
	assert diff["changed"] == [["title", "a", "b"]]
	assert diff["row_changed"] == [["items", 1, "r1", [["qty", 1, 5]]]]
	assert diff["added"] == [["items", {"name": None, "idx": 2, "item_code": "C", "qty": 2}]]
	assert diff["removed"] == [["items", old["tables"]["items"][1]]]
	assert is_empty(diff_snapshots(old, old))


def test_insert_and_delete_diffs_list_every_set_field():
	doc = {"fields": {"title": "a", "qty": 3, "notes": None}, "tables": {"items": []}}
	assert diff_snapshots(None, doc)["changed"] == [["title", None, "a"], ["qty", None, 3]]
	assert diff_snapshots(doc, None)["changed"] == [["title", "a", None], ["qty", 3, None]]


def test_fixed_and_exponential_backoff():
	assert retry_delay_seconds(5, 3, "Fixed") == 300
	assert retry_delay_seconds(0, 3, "Exponential") == 0
	rng = random.Random(1)
	for count in range(5):
		delay = retry_delay_seconds(2, count, "Exponential", rng)
		assert 0.8 * 120 * 2**count <= delay <= 1.2 * 120 * 2**count
	assert retry_delay_seconds(60, 40, "Exponential") == MAX_DELAY_SECONDS


def test_controller_shapes():
	single = types.ModuleType("single")
	single.get_target_document = lambda job, src: None
	single.update_target_doc = lambda job, src, target: None
	assert controller_shape(single) is Shape.SINGLE
	single.get_multiple_target_documents = lambda job, src: []
	assert controller_shape(single) is Shape.MULTIPLE
	single.execute = lambda job, src: {}
	assert controller_shape(single) is Shape.BYPASS
	broken = types.ModuleType("broken")
	broken.update_target_doc = lambda job, src, target: None
	assert controller_shape(broken) is None and shape_problems(broken)
	not_callable = types.ModuleType("nc")
	not_callable.execute = "nope"
	assert controller_shape(not_callable) is None
