"""The Frappe exception classes the app and the stand-in use: same names, bases and HTTP status codes."""


class ValidationError(Exception):
	http_status_code = 417


class PermissionError(Exception):  # noqa: A001
	http_status_code = 403


class DoesNotExistError(ValidationError):
	http_status_code = 404


class NameError(Exception):  # noqa: A001
	http_status_code = 409


class IncorrectSitePath(Exception):
	http_status_code = 404


class SiteNotSpecifiedError(Exception): ...


class DuplicateEntryError(NameError): ...


class MandatoryError(ValidationError): ...


class CharacterLengthExceededError(ValidationError): ...


class LinkValidationError(ValidationError): ...


class DocstatusTransitionError(ValidationError): ...


class TimestampMismatchError(ValidationError): ...


class LinkExistsError(ValidationError): ...


class InvalidEmailAddressError(ValidationError): ...


class UniqueValidationError(ValidationError): ...


class AppNotInstalledError(ValidationError): ...


class ImplicitCommitError(ValidationError): ...


class RetryBackgroundJobError(Exception): ...


class QueryTimeoutError(Exception): ...


class TooManyWritesError(Exception): ...


class QueueOverloaded(ValidationError):
	http_status_code = 503
