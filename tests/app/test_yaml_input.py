"""The YAML reader of configs, study files and flag values: what ``yaml.safe_load`` reads, within limits."""

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pml_metrix.app.yaml_input import MAX_BYTES, MAX_DEPTH, MAX_VALUES, YAMLInputError, parse_yaml, read_yaml_file


def aliases_of_aliases(levels, width=10):
    """Anchors ``l0`` .. ``l<levels>``, each a list of ``width`` aliases of the one before."""
    lines = ['l0: &l0 "lol"']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


LEGAL = {  # legal YAML, as configs and study files use it; read as yaml.safe_load reads it
    "anchors and aliases": "recall_at_k: &k [1, 2]\ndataset_options: {ks: *k}\n",
    "merge key": "base: &b {x: 1, y: 2}\nrun: {<<: *b, y: 3}\n",
    "merge keys, a list": "a: &a {x: 1}\nb: &b {x: 2, z: 1}\nrun:\n  <<: [*a, *b]\n  w: 0\n",
    "merge of a merged mapping, flattened before it is read": "o:\n  b: &b {<<: {x: 1}, x: 2}\nc: {<<: *b}\n",
    "merges of merges": "c0: &c0 {<<: {x: 1}, x: 2}\nc1: &c1 {<<: *c0, x: 3}\nc2: {<<: [*c1, *c0]}\nc3: *c1\n",
    "block scalars": "description: |\n  line one\n  line two\nother: >-\n  folded\n  text\n",
    "flow style": "{lr: 0.001, recall_at_k: [1, 2, 4], dataset_options: {a: [1, {b: c}]}}\n",
    "comments": "# a comment\nlr: 0.001  # trailing\n# end\n",
    "explicit document": "%YAML 1.1\n---\nlr: 0.001\n...\n",
    "safe tags": "a: !!str 123\nb: !!float 1\nc: !!int '3'\nd: !!binary aGk=\ne: !!timestamp 2001-12-14\n"
                 "f: !!set {x, y}\ng: !!omap [{x: 1}, {y: 2}]\nh: !!pairs [{x: 1}, {x: 2}]\ni: !!null ''\nj: !!bool yes\n",
    "complex key": "? [a, b]\n: 1\n".replace("[a, b]", "a"),
    "quoted keys": "'lr': 1\n\"epochs\": 2\n",
    "empty": "",
    "a scalar": "3\n",
    "an anchor used 500 times": "x: &x {a: 1}\n" + "".join(f"y{i}: *x\n" for i in range(500)),
    "aliases of aliases, 11,111 values": aliases_of_aliases(4),
    "nested to the limit": "[" * MAX_DEPTH + "]" * MAX_DEPTH,
    "unicode": "description: \"\u00e9\u00e8 \U0001F600 \\u00e9\"\n",
}

HOSTILE = {  # document -> what the one line says
    "aliases of aliases, 111,111 values": (aliases_of_aliases(5), f"is refused: more than {MAX_VALUES} values"),
    "merges that double a mapping": (
        "m0: &m0 {x: 1}\n" + "".join(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}\n" for i in range(1, 31)),
        f"is refused: more than {MAX_VALUES} values",
    ),
    "one level too deep": ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
    "100,000 levels": ("[" * 100_000 + "]" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
    "a mapping that contains itself": ("a: &a {x: *a}\n", "alias *a inside its own anchor"),
    "a list that contains itself, deeper": ("a: &a [1, [2, *a]]\n", "alias *a inside its own anchor"),
    "key twice": ("lr: 1\nepochs: 2\nlr: 3\n", "lr given twice in one mapping: keep one (line 3, column 1)"),
    "key twice in two spellings": ("{1: a, 0x1: b}\n", "1 given twice in one mapping"),
    "key twice in a set": ("!!set {a, a}\n", "a given twice in one mapping"),
    "merge key twice": ("a: &a {x: 1}\nb: {<<: *a, <<: *a}\n", "<< given twice in one mapping"),
    "python tag": ("!!python/object/apply:os.system ['echo pwned']\n", "could not determine a constructor"),
    "two documents": ("a: 1\n---\nb: 2\n", "expected a single document in the stream"),
    "undefined alias": ("a: *nowhere\n", "found undefined alias 'nowhere'"),
    "undefined alias, a long name": ("a: *" + "n" * 100_000 + "\n", "found undefined alias 'nnn"),
    "unclosed flow": ("loss: [ms\n", "expected ',' or ']', but got '<stream end>' (line 2, column 1)"),
    "tab indentation": ("a:\n\tb: 1\n", "found character '\\t' that cannot start any token"),
    "a NUL character": ("a: x\x00y\n", "unacceptable character #x0000"),
    "an integer of 5,001 digits": ("a: 1" + "0" * 5000 + "\n", "a value that cannot be read: Exceeds the limit"),
    "month 13": ("a: 2001-13-01\n", "a value that cannot be read: month must be in 1..12"),
    "too large": ("#" * MAX_BYTES + "\n", "is larger than 1024 KiB"),
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_yaml_reads_as_safe_load_reads_it(name):
    assert parse_yaml(LEGAL[name], "test") == yaml.safe_load(LEGAL[name])


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_yaml_is_one_short_line(name):
    text, message = HOSTILE[name]
    with pytest.raises(YAMLInputError) as refused:
        parse_yaml(text, "config file x.yaml")
    line = str(refused.value)
    assert line.startswith("config file x.yaml ") and message in line
    assert "\n" not in line and len(line) < 250


def test_a_merged_key_the_mapping_writes_again_is_overridden_not_refused():
    read = parse_yaml("base: &b {lr: 0.1, epochs: 2}\nrun:\n  <<: *b\n  lr: 0.01\n", "test")
    assert read["run"] == {"lr": 0.01, "epochs": 2}
    first_wins = parse_yaml("a: &a {x: 1}\nb: &b {x: 2}\nrun: {<<: [*a, *b]}\n", "test")
    assert first_wins["run"] == {"x": 1}


def test_files(tmp_path):
    (tmp_path / "utf16.yaml").write_bytes("lr: 0.001\ndescription: \u00e9t\u00e9\n".encode("utf-16"))
    assert read_yaml_file(str(tmp_path / "utf16.yaml"), "config file") == {"lr": 0.001, "description": "\u00e9t\u00e9"}
    (tmp_path / "bom.yaml").write_bytes("\ufefflr: 0.001\n".encode("utf-8"))
    assert read_yaml_file(str(tmp_path / "bom.yaml"), "config file") == {"lr": 0.001}
    (tmp_path / "huge.yaml").write_bytes(b"")
    with open(tmp_path / "huge.yaml", "r+b") as huge:  # 64 GiB, sparse: only the limit's bytes are read
        huge.truncate(64 << 30)
    with pytest.raises(YAMLInputError, match="is larger than 1024 KiB"):
        read_yaml_file(str(tmp_path / "huge.yaml"), "config file")
    with pytest.raises(YAMLInputError, match="cannot be read: Is a directory"):
        read_yaml_file(str(tmp_path), "config file")
    with pytest.raises(YAMLInputError, match="does not exist"):
        read_yaml_file(str(tmp_path / "missing.yaml"), "config file")


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
)
KEYS = st.one_of(st.text(max_size=10), st.integers(), st.booleans())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
                      max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(value=VALUES, style=st.sampled_from([None, True, False]), shared=st.booleans())
def test_what_safe_dump_writes_reads_back_as_safe_load_reads_it(value, style, shared):
    document = {"a": value, "b": value} if shared else value  # shared: safe_dump writes an anchor and an alias
    text = yaml.safe_dump(document, default_flow_style=style, allow_unicode=True)
    assert parse_yaml(text, "test") == yaml.safe_load(text)  # (PyYAML does not always read back what it wrote: "\x85")


@settings(max_examples=100, deadline=None)
@given(base=st.dictionaries(st.text(min_size=1, max_size=5), SCALARS, max_size=5),
       own=st.dictionaries(st.text(min_size=1, max_size=5).filter(lambda key: key != "<<"), SCALARS, max_size=5))
def test_merge_keys_read_as_safe_load_reads_them(base, own):
    # own's keys are no "<<": the document writes its merge key itself, and a second one is refused
    flow = dict(default_flow_style=True, width=float("inf"))
    text = f"base: &b {yaml.safe_dump(base, **flow)}run: {{<<: *b{', ' if own else ''}{yaml.safe_dump(own, **flow)[1:]}"
    assert parse_yaml(text, "test") == yaml.safe_load(text)
    assert parse_yaml(text, "test")["run"] == {**base, **own}
