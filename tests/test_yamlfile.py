"""The one strict YAML reader (sacnn.yamlfile): a key given twice is refused naming the file,
the key's place and both lines; everything else reads as yaml.safe_load reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sacnn.yamlfile import DuplicateKeyError, check_unique_keys, load_yaml, parse_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, message", [
    ("a: 1\nb: 2\na: 3\n", "f.yaml: key 'a' is given twice, on line 1 and on line 3"),
    ("sites:\n  sim1: {seed: 1}\n  sim2: {}\n  sim1: {seed: 2}\n",
     "f.yaml: key 'sim1' (in 'sites') is given twice, on line 2 and on line 4"),
    (("claims:\n  tests:\n    - {claim: a, model: m}\n    - claim: b\n      model: m\n"
     "      model: n\n"),
     "f.yaml: key 'model' (in 'claims.tests[1]') is given twice, on line 5 and on line 6"),
    ("training: {epochs: 4, epochs: 8}\n",
     "f.yaml: key 'epochs' (in 'training') is given twice, on line 1 and on line 1"),
    ("yes: 1\ntrue: 2\n", "f.yaml: key True is given twice"),  # YAML 1.1: one boolean key
])
def test_a_key_given_twice_is_refused_naming_the_key_and_both_lines(text, message):
    with pytest.raises(DuplicateKeyError) as exc:
        parse_yaml(text, "f.yaml")
    assert str(exc.value).startswith(message), str(exc.value)


@pytest.mark.parametrize("text", [
    "a: 1\nb: {a: 2}\nc: [{a: 1}, {a: 2}]\n",      # the same key in different mappings
    "1: one\n'1': text\n",                          # an integer and a string key differ
    "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n",  # a merge key overrides, on purpose
    "",                                             # an empty file
    "- a\n- b\n",                                   # not a mapping: the caller decides
])
def test_everything_else_reads_as_the_safe_loader_reads_it(text):
    assert parse_yaml(text, "f.yaml") == yaml.safe_load(text)


def test_syntax_errors_are_left_to_the_caller_and_files_are_read(tmp_path):
    with pytest.raises(yaml.YAMLError):
        parse_yaml("a: [1\n", "f.yaml")
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(DuplicateKeyError, match=f"^{path}: key 'a'"):
        load_yaml(path)


def test_json_config_files_are_checked_too(tmp_path):
    """Snakemake also reads a config file as JSON; one YAML cannot parse (a tab inside the
    indentation) is checked as JSON."""
    ok, bad = tmp_path / "ok.json", tmp_path / "bad.json"
    ok.write_text('{\n\t"a": 1,\n\t"b": {"a": 2}\n}\n')
    bad.write_text('{\n\t"training": {"epochs": 1},\n\t"training": {"epochs": 2}\n}\n')
    check_unique_keys([ok])
    with pytest.raises(DuplicateKeyError, match="bad.json: key 'training' is given twice"):
        check_unique_keys([ok, bad])
    yaml_bad = tmp_path / "bad.yaml"
    yaml_bad.write_text("chunk_size: 1\nchunk_size: 2\n")
    with pytest.raises(DuplicateKeyError, match="line 1 and on line 2"):
        check_unique_keys([ok, yaml_bad])


def test_every_yaml_file_the_project_ships_has_unique_keys():
    """Including the SLURM profile, which Snakemake (not sacnn) reads when it starts."""
    files = [*ROOT.glob("config/*.yaml"), ROOT / "slurm_gpu" / "config.yaml",
             ROOT / "tests" / "workflow" / "config.yaml", *ROOT.glob("workflow/**/*.yaml"),
             ROOT / "environment.yml"]
    assert len(files) >= 8
    for path in files:
        load_yaml(path)
