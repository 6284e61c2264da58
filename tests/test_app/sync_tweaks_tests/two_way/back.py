"""Sync Test Target -> Sync Test Source (the source the target names)."""


def get_target_document(sync_job, source_doc):
	return {"operation": "Update", "target_document_name": source_doc.source} if source_doc.source else None


def update_target_doc(sync_job, source_doc, target_doc):
	target_doc.title = source_doc.title
	target_doc.qty = source_doc.qty
