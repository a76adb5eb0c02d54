"""A griffe extension for the site: Sphinx cross-reference roles in docstrings become code.

SigDL's docstrings are written for both ``help()`` and Sphinx-style readers
(``:class:`~sigdl_core.interfaces.TargetSpec```); mkdocstrings renders Markdown, where such a
role would show as raw text. This turns ``:role:`~a.b.C``` into ```C``` (``:role:`a.b```
into ```a.b```) and ``::``-introduced literal blocks' markers into a plain colon.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|ref):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    target = target.lstrip(".")
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class SphinxRolesAsCode(griffe.Extension):
    """Rewrites Sphinx roles in every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _ROLE.sub(_code, obj.docstring.value)
            obj.docstring.value = re.sub(r"(\S)::\n", r"\1:\n", text)
