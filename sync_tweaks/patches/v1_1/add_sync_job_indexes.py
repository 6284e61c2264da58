"""Create the Sync Job indexes added since the site was installed (a migrate without a DocType change
does not run `on_doctype_update`)."""

from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import on_doctype_update


def execute():
	on_doctype_update()
