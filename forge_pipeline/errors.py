"""The one root of Forge's own errors.

A `ForgeError` is a problem the person running Forge can fix: bad input, a wrong setting, a damaged or
missing catalog, manifest or index, a selection that names nothing. Its message says what and where, so
the `forge` command prints it as one line (exit status 1). Any other exception is a bug in Forge and
shows its trace. The stage errors keep their older bases too (`class CatalogError(ForgeError, ValueError)`),
so code that catches `ValueError` or `FileNotFoundError` still does.
"""

from __future__ import annotations


class ForgeError(Exception):
    """A problem the person can fix; the message names the file, field or setting and what to do."""
