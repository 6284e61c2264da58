"""A Sync Job request: the parameters of create/enqueue_sync_job, parsed and checked once."""

import dataclasses
import datetime
import decimal
import json
from typing import Any

OPERATIONS = ("Insert", "Update", "Delete")
TRIGGER_TYPES = ("Manual", "Scheduler", "Webhook", "API", "Document Hook")
MAX_CONTEXT_BYTES = 1024 * 1024
MAX_TIMEOUT = 7 * 24 * 60 * 60
MAX_RETRIES = 1000
MAX_RETRY_DELAY = 7 * 24 * 60


class RequestError(ValueError):
	"""A bad parameter; `template` and `args` make a translatable message."""

	def __init__(self, template: str, *args):
		self.template = template
		self.args_ = args
		super().__init__(template.format(*args))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyncJobRequest:
	"""Everything a caller may say about a new Sync Job; None means "take it from the type"."""

	sync_job_type: str
	source_document_type: str | None = None
	source_document_name: str | None = None
	operation: str = ""
	context: str | None = None  # a JSON object, serialised
	target_document_type: str | None = None
	target_document_name: str | None = None
	parent_sync_job: str | None = None
	sync_backfill: str | None = None  # the backfill that creates the job (its roll-up counts it)
	# overrides of the type's settings
	queue: str | None = None
	timeout: int | None = None
	retry_delay: int | None = None
	max_retries: int | None = None
	# trigger
	trigger_type: str = "Manual"
	triggered_by_document_type: str | None = None
	triggered_by_document_name: str | None = None
	trigger_document_timestamp: Any = None
	# behaviour flags
	queue_on_insert: bool | None = None
	dry_run: bool = False
	insert_enabled: bool = True
	update_enabled: bool = True
	delete_enabled: bool = True
	update_without_changes_enabled: bool = False

	@classmethod
	def parse(cls, params: dict[str, Any]) -> "SyncJobRequest":
		"""Build a request from API parameters (documents or names), rejecting anything malformed."""
		params = dict(params)
		unknown = set(params) - PARAMETERS
		if unknown:
			raise RequestError("Unknown Sync Job parameter(s): {0}", ", ".join(sorted(unknown)))

		values: dict[str, Any] = {}
		for prefix in ("source", "target", "triggered_by"):
			doc = params.pop(f"{prefix}_doc", None)
			if doc is not None:
				values[f"{prefix}_document_type"] = _attr(doc, "doctype")
				values[f"{prefix}_document_name"] = _attr(doc, "name")
				if prefix == "triggered_by" and params.get("trigger_document_timestamp") is None:
					values["trigger_document_timestamp"] = _attr(doc, "modified")

		for key, value in params.items():
			if value is not None and key not in values:
				values[key] = value

		sync_job_type = _text(values.get("sync_job_type"), "sync_job_type")
		if not sync_job_type:
			raise RequestError("Sync Job Type is required")
		values["sync_job_type"] = sync_job_type

		for key in NAME_FIELDS:
			values[key] = _text(values.get(key), key) or None
		values["operation"] = parse_operation(values.get("operation"))
		values["context"] = serialise_context(values.get("context"))
		if not values["source_document_name"] and values["context"] is None:
			raise RequestError("A context is required when no source document is given")

		trigger_type = _text(values.get("trigger_type"), "trigger_type") or "Manual"
		if trigger_type not in TRIGGER_TYPES:
			raise RequestError(
				"Invalid trigger type {0}; use one of {1}", trigger_type, ", ".join(TRIGGER_TYPES)
			)
		values["trigger_type"] = trigger_type

		values["queue"] = _text(values.get("queue"), "queue") or None
		values["timeout"] = _int(values.get("timeout"), "timeout", 1, MAX_TIMEOUT)
		values["retry_delay"] = _int(values.get("retry_delay"), "retry_delay", 0, MAX_RETRY_DELAY)
		values["max_retries"] = _int(values.get("max_retries"), "max_retries", 0, MAX_RETRIES)
		for key in FLAG_FIELDS:
			if key in values:
				values[key] = _flag(values[key], key)
		return cls(**values)

	def as_doc_fields(self) -> dict[str, Any]:
		"""The request as Sync Job field values, leaving unset overrides out."""
		fields = dataclasses.asdict(self)
		return {key: value for key, value in fields.items() if value is not None}

	def job_fields(self, job_type) -> dict[str, Any]:
		"""Every field of the new job: the request's values, the rest copied from `job_type`."""
		fields = {key: None for key in (*NAME_FIELDS, *TRIGGER_FIELDS, "context")}
		fields.update(self.as_doc_fields())
		fill_from_type(fields, job_type)
		for key in FLAG_FIELDS:
			fields[key] = int(bool(fields.get(key)))
		fields.setdefault("operation", "")
		return fields

	def replace(self, **changes) -> "SyncJobRequest":
		return dataclasses.replace(self, **changes)


def fill_from_type(fields: dict, job_type) -> dict:
	"""Fill the values a job takes from its type when the caller left them unset (0 is a value)."""
	for key in TYPE_DEFAULTS:
		if fields.get(key) is None or fields.get(key) == "":
			fields[key] = job_type.get(key)
	fields["verbose_logging"] = int(bool(fields.get("verbose_logging") or job_type.get("verbose_logging")))
	fields["source_document_type"] = fields.get("source_document_type") or job_type.get(
		"source_document_type"
	)
	fields["target_document_type"] = fields.get("target_document_type") or job_type.get(
		"target_document_type"
	)
	fields["sync_job_type"] = job_type.get("name")
	return fields


def concurrency_key(
	job_type, source_document_type: str | None, source_document_name: str | None
) -> str | None:
	"""The key whose slot a job needs: None runs without a slot."""
	mode = job_type.concurrency or "Per Source"
	if mode == "Global":
		return "global"
	if mode == "Per Type":
		return f"type:{job_type.name}"
	if mode == "Per Source":
		return f"source:{job_type.name}:{source_document_type}:{source_document_name or ''}"[:TITLE_LENGTH]
	return None


def make_title(job) -> str:
	if job.target_document_type and job.target_document_name:
		title = f"{job.source_document_type} > {job.target_document_type}: {job.target_document_name}"
	elif job.source_document_name:
		title = f"{job.source_document_type}: {job.source_document_name}"
	else:
		title = f"{job.source_document_type}"
	return title[:TITLE_LENGTH]


def identity(fields: dict) -> tuple:
	"""What makes two not-yet-started jobs of one type and source identical (coalescing)."""
	normalised = []
	for key in IDENTITY_FIELDS:
		value = fields.get(key)
		if key == "context" and value:
			value = json.dumps(json.loads(value), sort_keys=True)
		if isinstance(value, bool):
			value = int(value)
		normalised.append(value if value not in ("", None) else None)
	return tuple(normalised)


def parse_operation(value: Any) -> str:
	"""Title-case insert/update/delete in any case; "" for none."""
	if value is None or value == "":
		return ""
	if isinstance(value, str) and value.strip().title() in OPERATIONS:
		return value.strip().title()
	raise RequestError("Invalid operation {0}; use Insert, Update or Delete", repr(value))


def serialise_context(value: Any) -> str | None:
	"""A context as a JSON object string; accepts a dict or a JSON string holding an object."""
	if value is None or value == "":
		return None
	if isinstance(value, str):
		try:
			value = json.loads(value)
		except ValueError:
			raise RequestError("Context is not valid JSON")
	if not isinstance(value, dict):
		raise RequestError("Context must be a JSON object, not {0}", type(value).__name__)
	try:
		text = json.dumps(value, default=_json_default, sort_keys=True)
	except (TypeError, ValueError) as e:
		raise RequestError("Context is not JSON-serialisable: {0}", str(e))
	if len(text.encode()) > MAX_CONTEXT_BYTES:
		raise RequestError(
			"Context is too large ({0} bytes; the limit is {1})", len(text.encode()), MAX_CONTEXT_BYTES
		)
	return text


def _json_default(value):
	if isinstance(value, datetime.datetime | datetime.date | datetime.time):
		return value.isoformat()
	if isinstance(value, datetime.timedelta):
		return value.total_seconds()
	if isinstance(value, decimal.Decimal):
		return float(value)
	raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _attr(doc, key):
	value = doc.get(key) if isinstance(doc, dict) else getattr(doc, key, None)
	if value is None and key != "modified":
		raise RequestError("Document objects need a {0}", key)
	return value


def _text(value: Any, key: str) -> str:
	if value is None:
		return ""
	if not isinstance(value, str | int) or isinstance(value, bool):
		raise RequestError("{0} must be text, not {1}", key, type(value).__name__)
	text = str(value).strip()
	if len(text) > 140:
		raise RequestError("{0} is too long ({1} characters; the limit is 140)", key, len(text))
	return text


def _int(value: Any, key: str, low: int, high: int) -> int | None:
	if value is None or value == "":
		return None
	if isinstance(value, bool) or not isinstance(value, int | str | float):
		raise RequestError("{0} must be a whole number", key)
	try:
		number = int(value) if not isinstance(value, float) or value.is_integer() else None
	except ValueError:
		number = None
	if number is None:
		raise RequestError("{0} must be a whole number", key)
	if not low <= number <= high:
		raise RequestError("{0} must be between {1} and {2}", key, low, high)
	return number


def _flag(value: Any, key: str) -> bool:
	if isinstance(value, bool):
		return value
	if value in (0, 1, "0", "1"):
		return bool(int(value))
	if isinstance(value, str) and value.lower() in ("true", "false"):
		return value.lower() == "true"
	raise RequestError("{0} must be true or false", key)


NAME_FIELDS = (
	"source_document_type",
	"source_document_name",
	"target_document_type",
	"target_document_name",
	"parent_sync_job",
	"triggered_by_document_type",
	"triggered_by_document_name",
	"sync_backfill",
)
# behaviour flags a job carries (children and dry-run clones inherit them)
BEHAVIOUR_FLAGS = (
	"dry_run",
	"insert_enabled",
	"update_enabled",
	"delete_enabled",
	"update_without_changes_enabled",
)
FLAG_FIELDS = ("queue_on_insert", *BEHAVIOUR_FLAGS)
TRIGGER_FIELDS = (
	"trigger_type",
	"triggered_by_document_type",
	"triggered_by_document_name",
	"trigger_document_timestamp",
)
# copied from the Sync Job Type when the caller leaves them unset
TYPE_DEFAULTS = ("queue", "timeout", "retry_delay", "max_retries")
TYPE_FILLED = (
	*TYPE_DEFAULTS,
	"verbose_logging",
	"source_document_type",
	"target_document_type",
	"sync_job_type",
)
TITLE_LENGTH = 140
# what makes two not-yet-started jobs of one type and source identical
IDENTITY_FIELDS = (
	"operation",
	"target_document_type",
	"target_document_name",
	"context",
	*BEHAVIOUR_FLAGS,
	"queue",
	"parent_sync_job",
	"sync_backfill",
)
PARAMETERS = frozenset(f.name for f in dataclasses.fields(SyncJobRequest)) | {
	"source_doc",
	"target_doc",
	"triggered_by_doc",
}
