"""The demo Sync Job Type ("ToDo to Note") that `scripts/dev-bench` sets up and the README walks through."""
