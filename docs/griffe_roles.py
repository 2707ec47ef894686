"""A griffe extension for the API pages: shows the Sphinx roles of our docstrings as code.

The docstrings use Google-style sections and reStructuredText roles such as
``:class:`~pml_metrix.MixedBatch``` or ``:func:`pair_positivity```, which Markdown would print
verbatim. This rewrites each role to a code span when mkdocstrings loads the package; a leading ``~``
keeps the last dotted component only, as Sphinx does. The source files are not touched.
"""

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|obj|data|exc):`(~?)\.?([^`]+)`")


def _code_span(match: "re.Match[str]") -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRolesAsCode(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code_span, obj.docstring.value)
