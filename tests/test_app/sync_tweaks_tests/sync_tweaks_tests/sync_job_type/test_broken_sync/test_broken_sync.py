"""A controller with no valid shape: update_target_doc alone is not enough."""


def update_target_doc(sync_job, source_doc, target_doc):
	pass
