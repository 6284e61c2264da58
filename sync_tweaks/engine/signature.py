"""Error signatures: failures with the same cause get the same signature, whatever ids they name.

A signature is the exception type, its message with ids, numbers, quoted values and hashes
normalised, and the controller frame that raised it. Grouping failures (and backfill roll-ups) read
the signature; `error_title` is its readable form.
"""

import hashlib
import re

TITLE_LENGTH = 240
# what varies between two failures of one cause: quoted values, hex ids/hashes, uuids, numbers
_NORMALISERS = (
	(re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
	(re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
	(re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<id>"),
	(re.compile(r"\b[A-Z]+-\d[\w-]*\b"), "<name>"),  # naming series: SO-00042, SINV-2026-0001
	(re.compile(r"\d+(?:[.,]\d+)*"), "<n>"),
	(re.compile(r"\s+"), " "),
)


def normalise_message(message: str) -> str:
	"""The message without what differs between failures of one cause (first line, trimmed)."""
	text = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
	for pattern, replacement in _NORMALISERS:
		text = pattern.sub(replacement, text)
	return text.strip()[:500]


def controller_frame(frames: list[tuple[str, str]], skip_prefixes: tuple[str, ...] = ()) -> str:
	"""The innermost frame outside the framework: "module.function" from (module, function) pairs,
	outermost first; "" when every frame is the framework's."""
	for module, function in reversed(frames):
		if not any(module == prefix.rstrip(".") or module.startswith(prefix) for prefix in skip_prefixes):
			return f"{module}.{function}"
	return ""


def error_signature(exc_type: str, message: str, frame: str = "") -> tuple[str, str]:
	"""(signature, title) of a failure: a 16-hex-digit hash, and "Type: message (at frame)"."""
	normalised = normalise_message(message)
	key = "\x1f".join((exc_type or "", normalised, frame or ""))
	signature = hashlib.sha1(key.encode()).hexdigest()[:16]
	title = f"{exc_type}: {normalised}" if exc_type else normalised
	if frame:
		title += f" (at {frame})"
	return signature, title[:TITLE_LENGTH]
