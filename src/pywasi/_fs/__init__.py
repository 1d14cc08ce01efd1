"""Descriptors and the sandbox resolver (``_resolve``): the only code that
turns a guest path into a host call."""

from __future__ import annotations

from ._resolve import ESCAPE_ERRNO, MAX_SYMLINKS, ParentDir, at_parent, open_beneath, stat_beneath

__all__ = ["ESCAPE_ERRNO", "MAX_SYMLINKS", "ParentDir", "at_parent", "open_beneath", "stat_beneath"]
