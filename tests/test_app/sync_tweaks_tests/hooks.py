app_name = "sync_tweaks_tests"
app_title = "Sync Tweaks Tests"
app_publisher = "sync_tweaks contributors"
app_description = "Fixtures for sync_tweaks' test suite"
app_email = "dev@sync-tweaks.invalid"
app_license = "mit"
# install sync_tweaks first; a bare name here makes `install-app` look it up online
required_apps = []

before_install = "sync_tweaks_tests.install.before_install"
