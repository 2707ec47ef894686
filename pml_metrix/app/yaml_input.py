"""YAML a user gives (config and study files, flag values), read as ``yaml.safe_load`` reads it, within limits.

Such input may come from elsewhere, so it is read by PyYAML's safe loader (no Python objects; the
tags ``yaml.safe_load`` accepts, anchors and aliases, merge keys ``<<``, block and flow styles, one
document) with three limits that real configs stay far below:

- ``MAX_BYTES`` of text;
- ``MAX_DEPTH`` levels of nested collections (deeper nesting would exhaust Python's stack);
- ``MAX_VALUES`` values once every alias is expanded: aliases of aliases ("billion laughs") make a
  small document and a small graph, but anything that walks the value (a check that prints it, a
  copy) walks every expanded value. An alias inside its own anchor (a value that contains itself)
  is refused too: no option takes one.

A key written twice in one mapping is refused (PyYAML would keep the last one silently). A key that
a merge brings in (``<<: *base``) and the mapping writes again is no repeat: the mapping's own value
overrides the merged one, which is what merge keys are for; of several merged mappings, the first
that has the key wins (YAML's merge rule, as PyYAML applies it).

Every refusal is a :class:`YAMLInputError` of one short line that names the input and, where
there is one, the line and column.
"""

from typing import Any, Union

import yaml

MAX_BYTES = 1 << 20
MAX_DEPTH = 50
MAX_VALUES = 100_000
MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLInputError(ValueError):
    """YAML that is refused; its message is one line for the user."""


class OverLimit(yaml.MarkedYAMLError):
    """Legal YAML beyond one of the limits."""


class LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the depth and expanded-size limits, and the refusal of a key given
    twice in one mapping. A fresh loader reads one document."""

    def __init__(self, stream):
        super().__init__(stream)
        self.depth = 0
        self.values = 0  # values composed so far, each alias counted as the values its anchor stands for
        self.expanded_sizes = {}  # composed node -> the number of values it stands for, aliases expanded
        self.checked_mappings = set()

    def compose_node(self, parent, index):
        """PyYAML's composition of one node, refusing nesting deeper than ``MAX_DEPTH``, an alias
        inside its own anchor, and more than ``MAX_VALUES`` values in the document (counted as they
        are composed, so that a long document stops at the limit)."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            anchored = self.anchors.get(event.anchor)
            if anchored is not None and anchored not in self.expanded_sizes:
                raise OverLimit(
                    None, None, f"alias *{clipped(event.anchor)} inside its own anchor: a value cannot contain itself",
                    event.start_mark)
            self.count(self.expanded_sizes.get(anchored, 0), event.start_mark)
            return super().compose_node(parent, index)  # the anchored node (or PyYAML's undefined alias error)
        if self.depth == MAX_DEPTH:
            raise OverLimit(None, None, f"collections nested deeper than {MAX_DEPTH} levels", event.start_mark)
        before = self.values
        self.count(1, event.start_mark)
        self.depth += 1
        node = super().compose_node(parent, index)
        self.depth -= 1
        self.expanded_sizes[node] = self.values - before
        return node

    def count(self, values, mark):
        self.values += values
        if self.values > MAX_VALUES:
            raise OverLimit(None, None, f"more than {MAX_VALUES} values once its aliases are expanded", mark)

    def flatten_mapping(self, node):
        """PyYAML's merge of the ``<<`` keys into ``node``, after refusing a key that the mapping
        itself writes twice. Each mapping is checked once, before any merge changes it (merging a
        mapping into another flattens the merged one too)."""
        if node not in self.checked_mappings:
            self.checked_mappings.add(node)
            written = set()
            for key_node, _ in node.value:
                key = "<<" if key_node.tag == MERGE_TAG else self.construct_object(key_node)
                try:
                    repeated = key in written
                except TypeError:  # an unhashable key, which PyYAML refuses next
                    continue
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"{clipped(str(key))} given twice in one mapping: keep one", key_node.start_mark)
                written.add(key)
        super().flatten_mapping(node)

    def construct_object(self, node, deep=False):
        """PyYAML's construction of ``node``; a value Python cannot hold (an integer of more than
        4300 digits, a date with month 13) is refused at its line."""
        try:
            return super().construct_object(node, deep)
        except ValueError as error:
            raise yaml.constructor.ConstructorError(
                None, None, f"a value that cannot be read: {clipped(str(error))}", node.start_mark) from None


def parse_yaml(text: Union[str, bytes], source: str) -> Any:
    """The value of the one YAML document ``text`` (bytes: UTF-8 or UTF-16 with its mark, as PyYAML
    decodes them), or a :class:`YAMLInputError` whose message begins with ``source``."""
    if len(text) > MAX_BYTES:
        raise YAMLInputError(f"{source} is larger than {MAX_BYTES >> 10} KiB: a config is a few KiB; is it the right file?")
    try:
        return yaml.load(text, Loader=LimitedLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        verdict = "is refused" if isinstance(error, OverLimit) else "is not valid YAML"
        problem = ", ".join(part for part in (error.context, error.problem) if part)
        raise YAMLInputError(f"{source} {verdict}: {clipped(problem)}{where}") from None
    except yaml.reader.ReaderError as error:  # bytes that are no UTF-8 or UTF-16, a control character
        raise YAMLInputError(
            f"{source} is not valid YAML: {clipped(str(error).splitlines()[0])} (at offset {error.position})") from None


def read_yaml_file(path: str, what: str) -> Any:
    """The value of the YAML file at ``path`` (a ``what``: "config file", ...), read within the
    limits, or a :class:`YAMLInputError`."""
    source = f"{what} {path}"
    try:
        with open(path, "rb") as file:
            text = file.read(MAX_BYTES + 1)  # no more than the limit, however large the file
    except FileNotFoundError:
        raise YAMLInputError(f"{source} does not exist") from None
    except OSError as error:
        raise YAMLInputError(f"{source} cannot be read: {error.strerror}") from None
    return parse_yaml(text, source)


def clipped(text: str, limit: int = 100) -> str:
    """``text`` cut to ``limit`` characters (a user's text inside a message, which stays one short line)."""
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
