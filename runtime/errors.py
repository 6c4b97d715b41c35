"""Vertebra's exceptions: one base class, :class:`VertebraError`, for everything the package raises on purpose.

Configuration errors (:class:`ConfigError`) name the file, the dotted field path, the value found and
what is valid, one field per message. The one exception to "one field per message" is
:class:`MissingFieldsError`: a file that leaves several required fields out is refused with all of them
listed, because the user has to add them all.
"""

from __future__ import annotations

import os
from typing import Any

MISSING_TEXT = "<missing>"  # the `found` of a field that is absent


class VertebraError(Exception):
    """Base class of every error Vertebra raises on purpose (catch this to catch them all)."""


class ConfigError(VertebraError, ValueError):
    """A configuration value is missing or invalid.

    Message: ``<file>: field '<path>': found <repr>; valid: <text>``. Also a ``ValueError``, so existing
    ``except ValueError`` clauses keep working.
    """

    def __init__(self, file: str | os.PathLike[str], field_path: str, found: Any, valid: str):
        self.file = str(file)
        self.field = field_path
        self.found = found
        self.valid = valid
        super().__init__(f"{self.file}: field '{field_path}': found {found!r}; valid: {valid}")


class MissingFieldsError(ConfigError):
    """Required fields are absent. ``missing`` lists (dotted path, what is valid) for each of them.

    With one missing field the message is a plain :class:`ConfigError` message; with several it lists
    every one, one per line. ``field`` is the paths joined by ", ", ``fields`` the list of paths.
    """

    def __init__(self, file: str | os.PathLike[str], missing: list[tuple[str, str]], hint: str = ""):
        if not missing:
            raise ValueError("MissingFieldsError needs at least one missing field")
        self.missing = list(missing)
        self.fields = [path for path, _ in self.missing]
        if len(self.missing) == 1:
            super().__init__(file, self.missing[0][0], MISSING_TEXT, self.missing[0][1])
            return
        self.file = str(file)
        self.field = ", ".join(self.fields)
        self.found = MISSING_TEXT
        self.valid = "a value for each"
        lines = [f"{self.file}: {len(self.missing)} required fields are missing{' (' + hint + ')' if hint else ''}:"]
        lines += [f"  field '{path}': found {MISSING_TEXT!r}; valid: {valid}" for path, valid in self.missing]
        Exception.__init__(self, "\n".join(lines))
