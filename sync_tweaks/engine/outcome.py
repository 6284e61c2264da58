"""What one sync run produced: a value the runner applies, never an exception."""

import dataclasses
from typing import Any

from sync_tweaks.engine.status import SyncJobStatus


@dataclasses.dataclass
class Outcome:
	status: SyncJobStatus
	reason: str = ""
	operation: str = ""
	target_doc: Any = None
	target_document_type: str | None = None
	target_document_name: str | None = None
	diff: dict | None = None
	before: dict | None = None
	after: dict | None = None
	# relays: the validated target dicts that become child jobs
	targets: list[dict] = dataclasses.field(default_factory=list)
