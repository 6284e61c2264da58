"""The three controller shapes and the check that a module has one of them."""

from enum import Enum
from types import ModuleType
from typing import Any, Protocol, runtime_checkable


class Shape(str, Enum):
	BYPASS = "Bypass"
	MULTIPLE = "Multiple Targets"
	SINGLE = "Single Target"


@runtime_checkable
class BypassController(Protocol):
	def execute(self, sync_job: Any, source_doc: Any) -> dict: ...


@runtime_checkable
class MultipleTargetController(Protocol):
	def get_multiple_target_documents(self, sync_job: Any, source_doc: Any) -> list[dict]: ...

	def update_target_doc(self, sync_job: Any, source_doc: Any, target_doc: Any) -> None: ...


@runtime_checkable
class SingleTargetController(Protocol):
	def get_target_document(self, sync_job: Any, source_doc: Any) -> dict | None: ...

	def update_target_doc(self, sync_job: Any, source_doc: Any, target_doc: Any) -> None: ...


# checked in this order: `execute` wins, multiple targets are checked before a single one
SHAPES = (
	(Shape.BYPASS, BypassController),
	(Shape.MULTIPLE, MultipleTargetController),
	(Shape.SINGLE, SingleTargetController),
)
HOOKS = ("after_start", "before_relay", "after_relay", "before_sync", "after_sync", "finished")


def controller_shape(module: ModuleType) -> Shape | None:
	"""The shape `module` implements, or None when it has none."""
	for shape, protocol in SHAPES:
		if isinstance(module, protocol) and all(
			callable(getattr(module, name)) for name in _protocol_methods(protocol)
		):
			return shape
	return None


def shape_problems(module: ModuleType) -> list[str]:
	"""Human-readable reasons why `module` is not a usable controller (empty when it is)."""
	if controller_shape(module):
		return [
			f"{name} is not callable"
			for name in HOOKS
			if hasattr(module, name) and not callable(getattr(module, name))
		]
	return [
		"defines none of execute(sync_job, source_doc), "
		"get_multiple_target_documents(sync_job, source_doc) + update_target_doc(sync_job, source_doc, target_doc), "
		"get_target_document(sync_job, source_doc) + update_target_doc(sync_job, source_doc, target_doc)"
	]


def _protocol_methods(protocol) -> list[str]:
	return [name for name in vars(protocol) if not name.startswith("_") and callable(getattr(protocol, name))]
