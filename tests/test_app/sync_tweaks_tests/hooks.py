app_name = "sync_tweaks_tests"
app_title = "Sync Tweaks Tests"
app_publisher = "sync_tweaks contributors"
app_description = "Fixtures for sync_tweaks' test suite"
app_email = "dev@sync-tweaks.invalid"
app_license = "mit"
# install sync_tweaks first; a bare name here makes `install-app` look it up online
required_apps = []

before_install = "sync_tweaks_tests.install.before_install"

# the no-loops tests' two-way pair (sync_tweaks_tests.two_way): only titles starting "two-way" sync
doc_events = {
	"Sync Test Source": {"on_update": "sync_tweaks_tests.two_way.on_update"},
	"Sync Test Target": {"on_update": "sync_tweaks_tests.two_way.on_update"},
}
