"""The errors a user can cause. The CLI turns each into one line, ``Error: ...``, and exit code 1."""


class CuratorError(Exception):
    """Base class: something the user can fix; the message says how."""


class LibraryNotFound(CuratorError):
    """No library at the given location."""


class SchemaOutOfDate(CuratorError):
    """The library's schema is older (or newer) than this curator expects."""


class ImageNotFound(CuratorError):
    """An image reference (id, path or sha256 prefix) matches no image, or more than one."""


class ClassNotFound(CuratorError):
    """A class or sub-class name that the library does not have."""


class InvalidInput(CuratorError):
    """An argument that cannot be used as given."""


class NotFound(CuratorError):
    """A named thing (split build, run, checkpoint) that does not exist."""


class ConflictingOptions(InvalidInput):
    """Two options that each choose the same thing (where training starts from): give one."""
