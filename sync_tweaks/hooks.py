app_name = "sync_tweaks"
app_title = "Sync Tweaks"
app_publisher = "sync_tweaks contributors"
app_description = "Queue-based framework to keep Frappe DocTypes in sync"
app_email = "dev@sync-tweaks.invalid"
app_license = "mit"
# Frappe is always installed; bare names here make `install-app` look them up online
required_apps = []

export_python_type_annotations = True

# form helpers that keep each Desk script short
doctype_js = {
	"Sync Job": "public/js/sync_job_progress.js",
	"Sync Job Type": ["public/js/sync_job_type_pause.js", "public/js/sync_job_type_backfill.js"],
}

# standard Sync Job Types ship as JSON in {app}/{module}/sync_job_type/: Frappe syncs neither on install nor on migrate
after_install = "sync_tweaks.install.after_install"
after_migrate = "sync_tweaks.install.after_migrate"
# apps installed after this one ship their types too
after_app_install = "sync_tweaks.install.after_app_install"

scheduler_events = {
	"cron": {
		# every minute: `all` runs only every 4 minutes
		"* * * * *": ["sync_tweaks.queue.maintenance.run_maintenance"],
	},
}

# a source or target may be deleted while jobs still name it (its Deleted Document copy is used)
ignore_links_on_delete = ["Sync Job", "Sync Link"]

default_log_clearing_doctypes = {"Sync Job": 30}

# slots, leases and overrun marks must survive `bench clear-cache` and migrate while jobs run
persistent_cache_keys = ["sync_tweaks:*"]

# lineage: the form of any synced source or target shows its links (one indexed query, and none at
# all for doctypes that were never synced)
doc_events = {
	"*": {"onload": "sync_tweaks.lineage.onload", "after_rename": "sync_tweaks.lineage.after_rename"}
}
app_include_js = ["/assets/sync_tweaks/js/sync_lineage.js", "/assets/sync_tweaks/js/sync_conflicts.js"]
