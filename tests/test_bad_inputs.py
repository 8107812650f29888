"""A user's mistakes: every bad input fails at the step that owns it, with a message naming the
file and the field, a non-zero exit, no traceback and nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from fixtures_data import SITE, tiny_arrays, tiny_site, write_reference

from sacnn.data import DataValidationError, ingest
from sacnn.data import __main__ as data_cli
from sacnn.data.validate import VALUE_LIMIT
from sacnn.evaluation import EvaluationError, gather
from sacnn.evaluation import main as evaluation_main
from sacnn.simulate import __main__ as simulate_cli


def run_ingest_cli(site_dir, tmp_path, *extra):
    out = tmp_path / "out" / "dataset.nc"
    return data_cli.main(["ingest", str(site_dir), SITE, "--out", str(out), *extra]), out


def assert_refused(capsys, code, out, *parts):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temporary left
    return err


# -- overflow and absurd ranges ---------------------------------------------------------------

@pytest.mark.parametrize("field, file", [("train_images", "train_img"),
                                         ("val_responses", "valRsp"),
                                         ("train_responses", "trainRsp")])
def test_values_beyond_the_limit_are_refused_with_file_and_field(tmp_path, capsys, field, file):
    arrays = tiny_arrays()
    arr = arrays[field].astype(np.float64)
    arr.flat[7] = 1e40  # float32 would make it inf; z-scoring would turn every image to NaN
    arrays[field] = arr
    site = write_reference(tmp_path / SITE, arrays)
    code, out = run_ingest_cli(site, tmp_path)
    assert_refused(capsys, code, out, f"{file}_{SITE}.npy", f"'{field}'",
                   f"within +-{VALUE_LIMIT:g}", "1e+40")


def test_a_value_that_overflows_in_preprocessing_is_caught_after_the_step(tmp_path,
                                                                         monkeypatch):
    import importlib

    ingest_mod = importlib.import_module("sacnn.data.ingest")  # the package's `ingest` is a function

    def overflowing(train, val, method):
        with np.errstate(over="ignore"):
            return train * np.float32(1e38) * np.float32(10), val, {"image_norm": method}

    monkeypatch.setattr(ingest_mod, "normalise_images", overflowing)
    with pytest.raises(DataValidationError, match=r"train_img_tiny.npy: field 'train_images': "
                       r"expected finite values after downsampling and image_norm"):
        ingest(tiny_site(tmp_path), SITE, out=tmp_path / "out" / "dataset.nc")
    assert not (tmp_path / "out" / "dataset.nc").exists()


# -- unreadable files -------------------------------------------------------------------------

def _npy_cases(tmp_path):
    ok = tmp_path / "ok.npy"
    np.save(ok, tiny_arrays()["train_responses"])
    data = ok.read_bytes()
    return {
        "empty": (b"", "an empty file (0 bytes)"),
        "text": (b"0.1 0.2 0.3\n0.4 0.5 0.6\n", "no .npy header"),
        "truncated": (data[:len(data) - 40], "truncated?"),
        "bad header": (b"\x93NUMPY\x01\x00\x10\x00{nonsense}      \n", "malformed header"),
    }


def test_broken_npy_files_are_refused_with_what_is_wrong(tmp_path, capsys):
    for name, (content, why) in _npy_cases(tmp_path).items():
        site = tiny_site(tmp_path / name.replace(" ", "_"))
        (site / f"trainRsp_{SITE}.npy").write_bytes(content)
        code, out = run_ingest_cli(site, tmp_path / name.replace(" ", "_"))
        err = assert_refused(capsys, code, out, f"trainRsp_{SITE}.npy", "'train_responses'", why)
        assert "pickle" not in err, (name, err)  # a text file is not 'pickled objects'


def test_object_arrays_are_refused_as_needing_pickle(tmp_path, capsys):
    site = tiny_site(tmp_path, train_responses=np.array([{"a": 1}] * 40, dtype=object))
    code, out = run_ingest_cli(site, tmp_path)
    assert_refused(capsys, code, out, f"trainRsp_{SITE}.npy", "holds Python objects")


# -- site.yaml and option values ---------------------------------------------------------------

@pytest.mark.parametrize("sidecar, parts", [
    ("val_layout: [unclosed\n", ["site.yaml", "not a readable YAML file"]),
    ("repeats: [10]\n", ["site.yaml", "'repeats'", "an integer or null", "[10]"]),
    ("image_size: null\n", ["site.yaml", "'image_size'", "an integer", "None"]),
    ("seed: abc\n", ["site.yaml", "'seed'", "an integer", "'abc'"]),
    ("holdout_fraction: true\n", ["site.yaml", "'holdout_fraction'", "a number"]),
    ("- repeats\n", ["site.yaml", "expected a mapping"]),
    ("repeats: 4\nval_layout: image_neuron_repeat\nrepeats: 5\n",
     ["site.yaml: key 'repeats' is given twice, on line 1 and on line 3"]),
])
def test_bad_site_yaml_names_the_file_and_the_setting(tmp_path, capsys, sidecar, parts):
    site = tiny_site(tmp_path)
    (site / "site.yaml").write_text(sidecar)
    code, out = run_ingest_cli(site, tmp_path)
    assert_refused(capsys, code, out, *parts)


def test_bad_command_line_options_are_explained(tmp_path, capsys):
    site = tiny_site(tmp_path)
    code, out = run_ingest_cli(site, tmp_path, "--options-json", "[1]")
    assert_refused(capsys, code, out, "--options-json", "expected a JSON object", "list")
    code, out = run_ingest_cli(site, tmp_path, "--options-json", "{repeats: 4")
    assert_refused(capsys, code, out, "--options-json: not valid JSON")
    code, out = run_ingest_cli(site, tmp_path, "-o", "seed=abc")
    assert_refused(capsys, code, out, "config or --option", "'seed'", "an integer")
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    code = data_cli.main(["ingest", str(site), SITE, "--out", str(blocker / "dataset.nc")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot create the folder" in err and "a_file" in err, err
    assert "Traceback" not in err


def test_an_option_without_a_value_is_a_usage_error(tmp_path, capsys):
    """Status 2 and "error:", as for every usage error of a sacnn command."""
    code, out = run_ingest_cli(tiny_site(tmp_path), tmp_path, "-o", "repeats")
    assert_refused(capsys, code, out, "--option expects KEY=VALUE, got 'repeats'")
    proc = subprocess.run([sys.executable, "-m", "sacnn", "ingest", str(tmp_path / SITE), SITE,
                           "-o", "repeats"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr


def test_a_key_given_twice_is_refused_by_every_cli_that_reads_yaml(tmp_path, capsys):
    """simulate --config and cost --configfile (site.yaml: above; the workflow's config
    files: tests/test_workflow.py)."""
    from sacnn.cost import main as cost_main

    twice = "key 'n_neurons' is given twice, on line 1 and on line 3"
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("n_neurons: 3\nseed: 1\nn_neurons: 4\n")
    assert simulate_cli.main([str(tmp_path / "s"), "--config", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --config {cfg}: {twice}"), err
    assert not (tmp_path / "s").exists()
    cfg.write_text("training: {epochs: 1}\nmodels: {}\ntraining: {epochs: 2}\n")
    throughput = tmp_path / "t.jsonl"
    throughput.write_text("")
    with pytest.raises(SystemExit) as exc:
        cost_main(["--configfile", str(cfg), "--throughput", str(throughput)])
    assert f"error: {cfg}: key 'training' is given twice, on line 1 and on line 3" in str(
        exc.value)


@pytest.mark.parametrize("shape", ["2-D", "3-D"])
def test_one_repeat_without_declared_repeats_is_ingested_saying_what_was_assumed(
        tmp_path, capsys, shape):
    arrays = tiny_arrays(repeats=1)
    if shape == "2-D":
        arrays["val_responses"] = arrays["val_responses"][..., 0]  # (N_val, neurons)
    site = write_reference(tmp_path / SITE, arrays)
    code, out = run_ingest_cli(site, tmp_path)
    err = capsys.readouterr().err
    assert code == 0, err
    note = (f"note: {site}/valRsp_{SITE}.npy: field 'val_responses': shape "
            f"{arrays['val_responses'].shape} has one repeat per validation image, taken as "
            "responses already averaged over the repeats (option 'repeats' is not declared)")
    assert note in err and "FEVE and cc_norm" in err and "repeats: 1" in err, err
    with xr.open_dataset(out) as ds:  # and recorded in the dataset
        assert json.loads(ds.attrs["preprocessing"])["assumed"] == [err.split("note: ")[1]
                                                                    .strip()]
    (site / "site.yaml").write_text("repeats: 1\n")  # declared: nothing is assumed
    code, out = run_ingest_cli(site, tmp_path / "declared")
    assert code == 0 and "note:" not in capsys.readouterr().err
    with xr.open_dataset(out) as ds:
        assert json.loads(ds.attrs["preprocessing"])["assumed"] == []


def test_simulation_settings_of_the_wrong_type_are_named(tmp_path, capsys):
    assert simulate_cli.main([str(tmp_path / "s"), "-s", "seed=abc", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'seed'" in err and "an integer" in err and "Traceback" not in err
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("n_neurons: [3\n")
    assert simulate_cli.main([str(tmp_path / "s"), "--config", str(cfg)]) == 2
    assert "sim.yaml" in capsys.readouterr().err
    cfg.write_text("n_neurons: -2\n")
    assert simulate_cli.main([str(tmp_path / "s"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "sim.yaml" in err and "'n_neurons'" in err and ">= 1" in err
    assert not (tmp_path / "s").exists()


def test_cli_exit_status_and_no_traceback_in_a_real_process(tmp_path):
    site = tiny_site(tmp_path)
    (site / f"trainRsp_{SITE}.npy").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "sacnn.data", "ingest", str(site), SITE,
                           "--out", str(tmp_path / "o" / "d.nc")], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "trainRsp_tiny.npy: field 'train_responses'" in proc.stderr


# -- evaluation of corrupt chunks ------------------------------------------------------------

def test_a_corrupt_chunk_prediction_file_says_which_job_to_rerun(tmp_path, capsys):
    bad = tmp_path / "chunk0" / "predictions.nc"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)  # an HDF5 signature, then garbage
    with pytest.raises(EvaluationError, match="chunk0/predictions.nc: not a readable "
                       "predictions file.*train_chunk job of this chunk: delete it"):
        gather([bad])
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(other)
    with pytest.raises(EvaluationError, match=r"other.nc: field\(s\) \['prediction'"):
        gather([other])
    with pytest.raises(SystemExit) as exc:
        evaluation_main([str(bad), "--site", "s", "--model", "m", "--out-predictions",
                         str(tmp_path / "p.nc"), "--out-metrics", str(tmp_path / "m.csv")])
    assert "sacnn.evaluation: error:" in str(exc.value)
    assert not (tmp_path / "p.nc").exists() and not (tmp_path / "m.csv").exists()


def test_an_out_of_range_top_fraction_is_a_usage_error_naming_the_option(tmp_path, capsys):
    for value in ("0", "5", "x"):
        with pytest.raises(SystemExit) as exc:
            evaluation_main([str(tmp_path / "c.nc"), "--site", "s", "--model", "m",
                             "--top-fraction", value, "--out-predictions",
                             str(tmp_path / "p.nc"), "--out-metrics", str(tmp_path / "m.csv")])
        err = capsys.readouterr().err
        assert exc.value.code == 2, value
        assert (f"error: argument --top-fraction: expected a number in (0, 1], got '{value}'"
                in err), err


def test_training_cli_reports_a_corrupt_dataset_and_bad_settings(tmp_path, capsys):
    from sacnn.training.__main__ import main as training_main

    bad = tmp_path / "dataset.nc"
    bad.write_bytes(b"garbage")
    args = ["--dataset", str(bad), "--site", "s", "--model", "m", "--weights",
            str(tmp_path / "w.pt"), "--predictions", str(tmp_path / "p.nc")]
    settings = '{"models": {"m": {"architecture": "rf-CNN"}}, "training": {"device": "cpu"}}'
    with pytest.raises(SystemExit) as exc:
        training_main(["--settings", settings, *args])
    assert "dataset.nc: field 'dataset': expected a readable NetCDF4 file" in str(exc.value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # a malformed argument: a usage error (status 2)
        training_main(["--settings", "{not json", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "error: argument --settings: not valid JSON" in err, err
    for fraction in ("0", "1.5", "nan", "half"):
        with pytest.raises(SystemExit) as exc:
            training_main(["--settings", settings, *args, "--fraction", fraction])
        err = capsys.readouterr().err
        assert exc.value.code == 2, fraction
        assert f"error: argument --fraction: expected a number in (0, 1], got '{fraction}'" in err
    assert not (tmp_path / "w.pt").exists() and not (tmp_path / "p.nc").exists()


@pytest.mark.parametrize("command", [
    ["tables", "table", "--out", "OUT"],
    ["tables", "parameters", "--out", "OUT"],
    ["claims", "--out", "OUT"],
    ["groundtruth", "site", "--site", "s", "--truth", "t.nc", "--dataset", "d.nc", "--out", "OUT"],
])
@pytest.mark.parametrize(("spec", "message"), [
    ("{not json", "error: argument --spec: not valid JSON"),
    ("[1, 2]", "error: argument --spec: expected a JSON object, got list"),
])
def test_result_commands_refuse_a_spec_that_is_not_a_json_object(
        tmp_path, capsys, command, spec, message):
    """--spec of the commands that read results is a usage error (status 2, one line), not a
    traceback, and nothing is written."""
    import importlib

    module = importlib.import_module(f"sacnn.{command[0]}")
    out = tmp_path / "out.csv"
    argv = [str(out) if a == "OUT" else a for a in command[1:]] + ["--spec", spec]
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err, err
    assert "Traceback" not in err and not out.exists()


def test_groundtruth_gather_refuses_provenance_that_is_not_a_json_object(tmp_path, capsys):
    from sacnn.groundtruth import main as groundtruth_main

    out = tmp_path / "groundtruth.csv"
    with pytest.raises(SystemExit) as exc:
        groundtruth_main(["gather", str(tmp_path / "a.csv"), "--out", str(out),
                          "--provenance", "{"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "error: argument --provenance: not valid JSON" in err, err
    assert not out.exists()
