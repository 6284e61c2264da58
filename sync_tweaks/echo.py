"""No sync loops: a write made by a sync job does not enqueue the reverse job of the same pair.

Two types syncing A -> B and B -> A: the job of A -> B saves B, whose doc hook calls
`enqueue_sync_job("B to A", source_doc=B)`. While a job writes its target (from `before_sync` to
`after_sync`, or inside a bypass controller's `execute`), a request is that job's echo when its
source is the document being written and its target is the job's source (or a document of the job's
source type, when the request names no target). A request whose target type (its own or its type's)
is not the job's source type is a legitimate job of another pair, never an echo; bulk requests
(`enqueue_sync_jobs`) are checked row by row. An echo creates no job: `create_sync_job` and
`enqueue_sync_job` return None, so one user edit produces exactly one job. A controller that wants
the echo sets `sync_job.flags.allow_echo = True` in any hook before the save.
"""

import contextlib

import frappe


@contextlib.contextmanager
def writing(job, target_doc):
	"""Mark the block as `job` writing `target_doc` (None: a bypass controller, target unknown)."""
	previous = getattr(frappe.local, "sync_tweaks_writing", None)
	frappe.local.sync_tweaks_writing = (job, target_doc)
	try:
		yield
	finally:
		frappe.local.sync_tweaks_writing = previous


def is_echo(request, job_type) -> bool:
	"""Whether `request` is the reverse job of the pair the running job is writing."""
	current = getattr(frappe.local, "sync_tweaks_writing", None)
	if not current:
		return False
	job, target_doc = current
	if job.flags.get("allow_echo"):
		return False
	source_type = request.source_document_type or job_type.source_document_type
	if target_doc is not None:
		if (source_type, request.source_document_name) != (target_doc.doctype, target_doc.name):
			return False
	elif source_type != job.target_document_type:
		return False
	# only the pair's reverse type: a type whose target is not the job's source type is no echo
	target_type = request.target_document_type or job_type.target_document_type
	if not target_type or target_type != job.source_document_type:
		return False
	return not request.target_document_name or request.target_document_name == job.source_document_name
