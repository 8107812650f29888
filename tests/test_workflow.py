"""The Snakemake workflow: lint, format, dry runs (default, paper config on a reference-layout
fixture), and one full run of the tiny config (tests/workflow/config.yaml) through every rule.

Snakemake runs as a subprocess of the venv's snakemake with ``--directory tmp_path``, so
results and ``.snakemake`` state never land in the repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sacnn import cost, experiment
from sacnn.workflow_config import MATRIX, assemble, load_config

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
TINY = ROOT / "tests" / "workflow" / "config.yaml"
FIGURES = experiment.figures(yaml.safe_load(MATRIX.read_text()))  # the figure registry
TABLE_ROWS = {
    "table1": ["ff-CNN", "ff+sa-CNN", "rf-CNN", "rf+sa-CNN"],
    "table2": ["rf-CNN", "rf-CNN (c=30, Incr. stage 1)", "rf+sa-CNN*(Simul.)",
               "rf+sa-CNN*(Incr.)", "ff+sa-CNN*(Simul.)", "ff+sa-CNN*(Incr.FC1)",
               "ff+sa-CNN*(Incr.FC2)"],
    "table3": ["ff-CNN", "ff+sa-CNN", "rf-CNN", "rf+sa-CNN"],
    "tableA": ["rf+sa-CNN", "rf+sa-CNN*(Simul.)", "rf+sa-CNN*(Incr.)", "rf+sa-CNN (c=375)",
               "ff+sa-CNN (no beta)",
               "rf+sa-CNN (no beta)", "ff+sa-CNN*(Simul.)",
               "alpha-alpha-SA(gamma=True)-beta3-beta3-CTL"],
}


def notebooks_present() -> bool:
    return all((ROOT / "workflow" / "notebooks" / f"{f}.ipynb").exists() for f in FIGURES)


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900,
              snakefile: Path = SNAKEFILE, pythonpath: Path | None = None
              ) -> subprocess.CompletedProcess:
    """Snakemake in ``workdir``; with the Snakefile of a copied checkout, its sacnn (under
    src/ beside workflow/) is the one imported by the workflow and its jobs."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if pythonpath is None and snakefile != SNAKEFILE:
        pythonpath = snakefile.parents[1] / "src"
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [SNAKEMAKE, "-s", str(snakefile), "--directory", str(workdir), *args],
        check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def assembled(path: Path) -> dict:
    """A config file laid over the matrix (config/matrix.yaml), as the workflow sees it
    before validation: a complete config of its own, to change and write for a test."""
    return assemble(yaml.safe_load(path.read_text()), yaml.safe_load(MATRIX.read_text()))


def workdir_with(tmp_path: Path, config: Path | dict) -> Path:
    (tmp_path / "config").mkdir(parents=True, exist_ok=True)
    target = tmp_path / "config" / "config.yaml"
    if isinstance(config, dict):
        target.write_text(yaml.safe_dump(config, sort_keys=False))
    else:
        shutil.copy(config, target)
    return tmp_path


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    counts: dict[str, int] = {}
    block = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def dry_run(workdir: Path, *targets: str, extra: tuple[str, ...] = ()) -> dict[str, int]:
    proc = snakemake(workdir, "-n", "--cores", "2", *extra, *targets)
    return job_counts(proc.stdout + proc.stderr)


# ----------------------------------------------------------------------------- static


def test_snakefiles_are_snakefmt_formatted():
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", str(ROOT / "workflow")],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lint_is_clean(tmp_path):
    work = workdir_with(tmp_path, ROOT / "config" / "config.yaml")
    proc = snakemake(work, "--lint", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out


# ---------------------------------------------------------------------------- dry runs


def test_default_config_plans_every_table_from_config(tmp_path):
    work = workdir_with(tmp_path, ROOT / "config" / "config.yaml")
    cfg = assembled(ROOT / "config" / "config.yaml")
    targets = [f"results/{t}.csv" for t in TABLE_ROWS] + ["results/tables/parameters.csv"]
    counts = dry_run(work, *targets)
    n_models = len(cfg["models"])
    n_sites = len({s for t in TABLE_ROWS for s in cfg["experiments"][t]["sites"]})
    n_chunks = -(-cfg["sites"]["sim1"]["simulate"]["n_neurons"] // cfg["chunk_size"])
    t3 = cfg["experiments"]["table3"]
    extra = len(t3["sites"]) * len(t3["models"]) * len(t3["fractions"])
    assert counts["simulate_site"] == n_sites
    assert counts["ingest_site"] == n_sites
    assert counts["train_chunk"] == (n_models * n_sites + extra) * n_chunks
    assert counts["table"] == 4


def test_table2_builds_only_what_it_needs(tmp_path):
    work = workdir_with(tmp_path, ROOT / "config" / "config.yaml")
    cfg = assembled(ROOT / "config" / "config.yaml")
    proc = snakemake(work, "-n", "--cores", "2", "results/table2.csv")
    out = proc.stdout + proc.stderr
    counts = job_counts(out)
    models = set(cfg["experiments"]["table2"]["models"])
    assert counts["train_chunk"] == len(models) * 2  # one chunk per site, two sites
    assert "/f25/" not in out and "/f50/" not in out  # no data-fraction runs
    assert "models/ff_cnn/" not in out and "models/ff_sa_cnn/" not in out  # Table 1 only


def test_claims_build_only_what_they_compare(tmp_path):
    work = workdir_with(tmp_path, ROOT / "config" / "config.yaml")
    cfg = assembled(ROOT / "config" / "config.yaml")
    counts = dry_run(work, "results/claims.csv")
    trained = {(s, stage, f) for s, m, f in experiment.claims_cells(cfg)
               for stage in experiment.model_chain(cfg["models"], m)}
    assert counts["train_chunk"] == len(trained)  # one chunk per site (10 neurons)
    assert counts["claims"] == 1
    assert not {"table", "figure", "groundtruth_site", "groundtruth_figure"} & set(counts)
    # the controls are planned: same seed as sim1, no surround / a stronger one
    sites = cfg["sites"]
    assert sites["sim1_off"]["simulate"]["surround"] is False
    assert sites["sim1_strong"]["simulate"]["surround_strength"] > 1
    for control in ("sim1_off", "sim1_strong"):
        same = {k: v for k, v in sites[control]["simulate"].items()
                if k not in ("surround", "surround_strength")}
        assert same == sites["sim1"]["simulate"], control


@pytest.mark.parametrize("name", ["simulated.yaml", "rf_question.yaml"])
def test_the_simulated_configs_plan_truth_and_claims_on_their_controls(tmp_path, name):
    cfg = assembled(ROOT / "config" / name)
    work = workdir_with(tmp_path, ROOT / "config" / name)
    counts = dry_run(work, "results/groundtruth.csv", "results/claims.csv")
    assert counts["simulate_site"] == len(cfg["sites"])
    assert counts["groundtruth_site"] == len(cfg["groundtruth"]["sites"]) and counts["claims"] == 1
    controls = [s for s in cfg["sites"] if experiment.site_surround(cfg, s) == "none"]
    assert controls and set(controls) <= set(cfg["groundtruth"]["sites"])
    assert cfg["resources"]["train"]["gpu"] == 1


def test_groundtruth_needs_simulated_sites_and_known_names(tmp_path):
    cfg = assembled(TINY)
    cfg["sites"]["real"] = {"raw": "resources/real", "n_neurons": 3}
    cfg["groundtruth"]["sites"].append("real")
    proc = snakemake(workdir_with(tmp_path, cfg), "-n", check=False)
    assert proc.returncode != 0
    assert "groundtruth.sites: site 'real' has no ground truth" in proc.stdout + proc.stderr
    cfg = assembled(TINY)
    cfg["claims"]["tests"][0]["sites"] = ["sim9"]
    proc = snakemake(workdir_with(tmp_path, cfg), "-n", check=False)
    assert proc.returncode != 0
    assert "claims.sites: unknown site 'sim9'" in proc.stdout + proc.stderr


def test_chunk_size_one_gives_one_job_per_neuron_and_chains_stages(tmp_path):
    work = workdir_with(tmp_path, TINY)
    target = "results/sim1/models/ff_sa_cnn_star_incr_fc2/f100/predictions.nc"
    proc = snakemake(work, target, "-n", "--cores", "2", "--config", "chunk_size=1")
    out = proc.stdout + proc.stderr
    # three stages (rf-CNN c=30 -> rf+sa-CNN*(Incr.) -> FC2) x three neurons
    assert job_counts(out)["train_chunk"] == 9
    for k in range(3):
        assert f"results/sim1/models/rf_sa_cnn_star_incr/f100/chunk{k}/weights.pt" in out
        assert f"results/sim1/models/rf_cnn_c30/f100/chunk{k}/weights.pt" in out
    # the FC2 job of chunk 1 reads the weights of the Incr. stage of chunk 1 (same chunk)
    job = re.search(r"rule train_chunk:\n\s+input: ([^\n]*)\n\s+output: [^\n]*"
                    r"ff_sa_cnn_star_incr_fc2/f100/chunk1/weights.pt", out)
    assert job and "rf_sa_cnn_star_incr/f100/chunk1/weights.pt" in job.group(1)


def test_config_typo_fails_at_once_with_the_key(tmp_path):
    cfg = assembled(TINY)
    cfg["training"]["epochz"] = 3
    work = workdir_with(tmp_path, cfg)
    proc = snakemake(work, "-n", check=False)
    assert proc.returncode != 0
    assert "epochz" in proc.stdout + proc.stderr


@pytest.mark.parametrize("where, change, message", [
    ("ingest", {"holdout_fracton": 0.2}, "sites.sim1.ingest: unknown key(s) ['holdout_fracton']"),
    ("simulate", {"n_neurons": -2}, "sites.sim1.simulate: setting 'n_neurons': expected >= 1"),
    ("simulate", {"seed": "abc"}, "sites.sim1.simulate: setting 'seed': expected an integer"),
    ("simulate", {"n_trian": 5}, "sites.sim1.simulate: unknown key(s) ['n_trian']"),
])
def test_site_settings_are_checked_before_any_job(tmp_path, where, change, message):
    """Typos inside a site's ingest/simulate settings fail the dry run, not the first job."""
    cfg = assembled(TINY)
    site = cfg["sites"]["sim1"]
    site[where] = {**(site.get(where) or {}), **change}
    work = workdir_with(tmp_path, cfg)
    proc = snakemake(work, "-n", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_a_corrupt_raw_file_is_reported_by_ingest_not_by_the_dag(tmp_path):
    """The DAG never trusts data files: a broken trainRsp plans one chunk and ingest_site
    fails with its message naming the file and the field."""
    write_reference_site(tmp_path / "resources" / "M1S1", "m1s1", n_neurons=7, seed=1)
    write_reference_site(tmp_path / "resources" / "M2S1", "m2s1", n_neurons=5, seed=2)
    (tmp_path / "resources" / "M1S1" / "trainRsp_m1s1.npy").write_text("not an array\n")
    paper = ROOT / "config" / "paper.yaml"
    proc = snakemake(tmp_path, "results/table1.csv", "-n", "--cores", "2", "--configfile",
                     str(paper))
    out = proc.stdout + proc.stderr
    assert "cannot read the neuron count of site M1S1" in out
    assert "Exception" not in out
    proc = snakemake(tmp_path, "results/M1S1/dataset.nc", "--cores", "2",
                     "--show-failed-logs", "--configfile", str(paper), check=False)
    out = proc.stdout + proc.stderr  # --show-failed-logs (Makefile, slurm_gpu) shows the log
    assert proc.returncode != 0 and "rule ingest_site" in out
    assert "trainRsp_m1s1.npy: field 'train_responses'" in out and "no .npy header" in out
    log = (tmp_path / "results" / "logs" / "ingest" / "M1S1.log").read_text()
    assert "no .npy header" in log and "Traceback" not in log
    assert not (tmp_path / "results" / "M1S1" / "dataset.nc").exists()


def test_config_unknown_model_in_a_table_is_named(tmp_path):
    cfg = assembled(TINY)
    cfg["experiments"]["table1"]["models"].append("no_such_model")
    work = workdir_with(tmp_path, cfg)
    proc = snakemake(work, "-n", check=False)
    assert proc.returncode != 0
    assert "no_such_model" in proc.stdout + proc.stderr


def _with_raw_site(cfg: dict, work: Path, folder: str = "resources/M1S1") -> dict:
    """The tiny config plus a raw site M1S1 that Table 1 reads (its files: below)."""
    write_reference_site(work / "resources" / "M1S1", "m1s1", n_neurons=4)
    cfg["sites"]["M1S1"] = {"raw": folder, "file_stem": "m1s1"}
    cfg["experiments"]["table1"]["sites"].append("M1S1")
    return cfg


def _twice(path: Path, key: str, value: str) -> None:
    """Append a second definition of a top-level key to a YAML file."""
    path.write_text(path.read_text() + f"\n{key}: {value}\n")


@pytest.mark.parametrize("mistake, message", [
    ("misspelled raw folder",
     ("error: sites.M1S1: resources/M1S_1: field 'site folder': expected an existing folder "
     "with the raw files (docs/data-format.md); found no such folder (did you mean "
     "resources/M1S1?)")),
    ("raw file missing",
     ("error: sites.M1S1: resources/M1S1: field 'raw files': expected train_img_m1s1.npy, "
     "trainRsp_m1s1.npy, val_img_m1s1.npy, valRsp_m1s1.npy, or m1s1.nc (layout 'auto', "
     "docs/data-format.md); found trainRsp_m1s1.npy missing")),
    ("site.yaml key twice",
     ("error: sites.M1S1: resources/M1S1/site.yaml: key 'repeats' is given twice, on line 2 "
     "and on line 4")),
    ("config key twice",
     "error: config/config.yaml: key 'chunk_size' is given twice, on line "),
    ("overlay key twice",
     "overlay.yaml: key 'training' is given twice, on line 1 and on line 2"),  # made absolute
    ("device tpu", "error: training.device: got 'tpu', expected 'auto', 'cpu' or 'cuda[:N]'"),
    ("unknown model", "error: experiments.table1.models[2]: unknown model 'rf_cnnn'"),
])
def test_config_mistakes_end_the_dry_run_with_the_message_only(tmp_path, mistake, message):
    """Each mistake fails `snakemake -n` before any job, with its message and no traceback
    (no InputFunctionException around it, no frames of the plan)."""
    cfg, extra = assembled(TINY), []
    if mistake in ("misspelled raw folder", "raw file missing", "site.yaml key twice"):
        cfg = _with_raw_site(cfg, tmp_path, "resources/M1S_1"
                             if mistake == "misspelled raw folder" else "resources/M1S1")
    if mistake == "device tpu":
        cfg["training"]["device"] = "tpu"
    if mistake == "unknown model":
        cfg["experiments"]["table1"]["models"][2] = "rf_cnnn"
    work = workdir_with(tmp_path, cfg)
    if mistake == "raw file missing":
        (work / "resources" / "M1S1" / "trainRsp_m1s1.npy").unlink()
    if mistake == "site.yaml key twice":
        _twice(work / "resources" / "M1S1" / "site.yaml", "repeats", "4")
    if mistake == "config key twice":
        _twice(work / "config" / "config.yaml", "chunk_size", "1")
    if mistake == "overlay key twice":
        (work / "overlay.yaml").write_text("training: {epochs: 2}\ntraining: {epochs: 3}\n")
        extra = ["--configfile", "overlay.yaml"]
    proc = snakemake(work, "-n", *extra, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert message in proc.stderr and proc.stderr.splitlines()[-1].startswith("error: "), out
    assert "Traceback" not in out and 'File "' not in out and "Exception" not in out, out


def test_a_corrupt_chunk_is_rebuilt_by_following_its_message(tmp_path):
    """The evaluation job's advice for a corrupt chunk, followed as written, retrains the
    chunk and rebuilds the model's metrics and the table, though the table still exists
    (Snakemake alone would not notice the deleted intermediate file)."""
    cfg = {"sites": {"sim1": {"simulate": {"seed": 1, "n_neurons": 3, "n_train": 200,
                                           "n_val": 60, "repeats": 4}}},
           "chunk_size": 3, "training": {"epochs": 1, "device": "cpu"},
           "architectures": {"ff-CNN": {"base": "ff-CNN", "channels": 4}},
           "models": {"ff_cnn": {"architecture": "ff-CNN"}},
           "experiments": {"table1": {"sites": ["sim1"], "models": ["ff_cnn"],
                                      "baseline": "ff_cnn"}}}
    work = workdir_with(tmp_path, cfg)
    snakemake(work, "--cores", "2")
    model = work / "results" / "sim1" / "models" / "ff_cnn" / "f100"
    chunk, metrics, table = model / "chunk0" / "predictions.nc", model / "metrics.csv", \
        work / "results" / "table1.csv"
    chunk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)  # an HDF5 signature, then garbage
    proc = snakemake(work, "--cores", "2", "--forcerun", "evaluate_model", check=False)
    assert proc.returncode != 0
    log = (work / "results" / "logs" / "evaluate" / "sim1" / "ff_cnn" / "f100.log").read_text()
    advice = re.search(r"chunk0/predictions.nc: not a readable predictions file .*; it is "
                       r"written by the train_chunk job of this chunk: delete it and run "
                       r"`([^`]+)` again", log)
    assert advice, log
    assert not metrics.exists() and table.exists()
    before = table.stat().st_mtime_ns
    chunk.unlink()  # the advice, as written
    command = advice.group(1).split()
    assert command[0] == "snakemake"
    proc = snakemake(work, *command[1:])
    assert "rule train_chunk" in proc.stdout + proc.stderr
    assert chunk.exists() and metrics.exists() and table.stat().st_mtime_ns > before
    assert "Nothing to be done" in snakemake(work, "-n").stdout


def write_reference_site(folder: Path, files: str, n_neurons: int, n_train: int = 40,
                         n_val: int = 12, repeats: int = 3, seed: int = 0) -> None:
    """A tiny site in the reference .npy layout (docs/data-format.md), 100 px images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"train_img_{files}.npy",
            rng.integers(0, 256, (n_train, 100, 100), dtype=np.uint8))
    np.save(folder / f"trainRsp_{files}.npy",
            rng.gamma(1.0, 0.2, (n_train, n_neurons)).astype(np.float32))
    np.save(folder / f"val_img_{files}.npy",
            rng.integers(0, 256, (n_val, 100, 100), dtype=np.uint8))
    np.save(folder / f"valRsp_{files}.npy",
            rng.gamma(1.0, 0.2, (n_val, n_neurons, repeats)).astype(np.float32))
    (folder / "site.yaml").write_text(f"val_layout: image_neuron_repeat\nrepeats: {repeats}\n")


def test_paper_config_dry_run_on_reference_layout(tmp_path):
    write_reference_site(tmp_path / "resources" / "M1S1", "m1s1", n_neurons=7, seed=1)
    write_reference_site(tmp_path / "resources" / "M2S1", "m2s1", n_neurons=5, seed=2)
    paper = ROOT / "config" / "paper.yaml"
    cfg = assembled(paper)
    assert cfg["training"]["epochs"] == 50 and cfg["training"]["batch_size"] == 50
    assert cfg["architectures"] == {}  # the paper's widths (c = 32 / 30)
    proc = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(paper))
    out = proc.stdout + proc.stderr
    counts = job_counts(out)
    assert "simulate_site" not in counts  # real data: nothing is simulated
    assert counts["ingest_site"] == 2
    n_models = len(cfg["models"])
    t3 = cfg["experiments"]["table3"]
    assert counts["train_chunk"] == n_models * 2 + len(t3["models"]) * len(t3["fractions"])
    # the cost projection plans exactly the workflow's training jobs (sacnn.experiment)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        jobs = cost.training_jobs(load_config([paper]), {})
    assert sum(len(j.chunks) for j in jobs) == counts["train_chunk"]
    assert {(j.site, j.model) for j in jobs} >= {("M1S1", "ff_cnn"), ("M2S1", "rf_cnn_c30")}
    assert "resources/M1S1/train_img_m1s1.npy" in out
    # the paper config replaces (not extends) the default: no demo site, no demo widths
    assert "sim1" not in out
    settings = re.findall(r"--settings '([^']*)'", snakemake(
        tmp_path, "results/M1S1/models/ff_cnn/f100/chunk0/weights.pt", "-n", "-p",
        "--cores", "2", "--configfile", str(paper)).stdout)
    assert settings and json.loads(settings[0])["architectures"] == {}
    # and the fixture really goes through ingest
    snakemake(tmp_path, "results/M1S1/dataset.nc", "--cores", "2", "--configfile", str(paper))
    assert (tmp_path / "results" / "M1S1" / "dataset.nc").exists()


def test_reference_config_is_the_paper_matrix_with_the_released_codes_choices(tmp_path):
    """config/reference.yaml = config/paper.yaml plus the released code's switches, and each
    switch reaches the job that owns it."""
    write_reference_site(tmp_path / "resources" / "M1S1", "m1s1", n_neurons=7, seed=1)
    write_reference_site(tmp_path / "resources" / "M2S1", "m2s1", n_neurons=5, seed=2)
    paper = assembled(ROOT / "config" / "paper.yaml")
    ref_path = ROOT / "config" / "reference.yaml"
    ref = assembled(ref_path)
    assert ref["training"] == {**paper["training"], "selection": "validation",
                               "frozen_mode": "train"}
    fc1 = ref["models"]["ff_sa_cnn_star_incr_fc1"]
    assert fc1 == {**paper["models"]["ff_sa_cnn_star_incr_fc1"], "combine_init": "random"}
    assert {m: v for m, v in ref["models"].items() if m != "ff_sa_cnn_star_incr_fc1"} == {
        m: v for m, v in paper["models"].items() if m != "ff_sa_cnn_star_incr_fc1"}
    assert {k: v for k, v in ref.items() if k not in ("training", "models", "sites")} == {
        k: v for k, v in paper.items() if k not in ("training", "models", "sites")}
    assert all(s["ingest"] == {"image_norm": "none"} for s in ref["sites"].values())
    counts = dry_run(tmp_path, extra=("--configfile", str(ref_path)))
    assert counts == dry_run(tmp_path, extra=("--configfile", str(ROOT / "config" / "paper.yaml")))
    out = snakemake(tmp_path, "results/M1S1/models/ff_sa_cnn_star_incr_fc1/f100/chunk0/weights.pt",
                    "results/M1S1/dataset.nc", "-n", "-p", "--cores", "2", "--configfile",
                    str(ref_path)).stdout
    settings = [json.loads(x) for x in re.findall(r"--settings '([^']*)'", out)]
    settings = next(x for x in settings if "ff_sa_cnn_star_incr_fc1" in x["models"])
    assert settings["training"]["selection"] == "validation"
    assert settings["models"]["ff_sa_cnn_star_incr_fc1"]["combine_init"] == "random"
    assert '"image_norm": "none"' in out


# -------------------------------------------------------------------------- full run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny config through every rule (tables; figures when the notebooks exist).

    It runs a copy of the checkout (workflow/ and src/, imported through PYTHONPATH by the
    workflow and its jobs) so that a test can edit the code without touching the repository.
    """
    base = tmp_path_factory.mktemp("tiny")
    repo = base / "repo"
    shutil.copytree(ROOT / "workflow", repo / "workflow")
    shutil.copytree(ROOT / "config", repo / "config")  # the matrix, read beside workflow/
    shutil.copytree(ROOT / "src" / "sacnn", repo / "src" / "sacnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    work = workdir_with(base / "work", TINY)
    targets = [f"results/{t}.csv" for t in TABLE_ROWS] + ["results/tables/parameters.csv"]
    if notebooks_present():
        targets = ["all"]
    snakefile = repo / "workflow" / "Snakefile"
    snakemake(work, "--cores", "2", *targets, timeout=1500, snakefile=snakefile)
    return work, snakefile


def test_every_table_has_the_papers_rows_with_finite_numbers(tiny_run):
    tiny_run, _ = tiny_run
    cfg = assembled(TINY)
    for table, rows in TABLE_ROWS.items():
        df = pd.read_csv(tiny_run / "results" / f"{table}.csv")
        assert list(df["model"]) == rows, table
        sites = cfg["experiments"][table]["sites"]
        for site in sites:
            cols = [c for c in df.columns if c.startswith(f"{site}_")]
            for stat in ("corr", "corr_sem", "delta_pct", "pt_j", "pt_s", "peak_overlap"):
                assert any(c.endswith(f"_{stat}") for c in cols), (table, site, stat)
            # every cell a number, except a PT cell left empty because no prediction reached
            # any top-k threshold (its hits column is 0 and pt_note says so for this site)
            for measure, col in ((m, c) for m in ("pt_j", "pt_s", "peak_overlap") for c in cols
                                 if c.endswith(f"_{m}")):
                empty = df[col].isna()
                hits = df[col.replace(f"_{measure}", f"_{measure}_hits")]
                assert (hits[empty] == 0).all() and (hits[~empty] > 0).all(), (table, col)
                notes = df.loc[empty, "pt_note"].astype(str)
                assert notes.str.contains(f"{site}").all() and notes.str.contains(
                    "left empty").all(), (table, col)
            values = df[[c for c in cols if not c.endswith(("_pt_j", "_pt_s",
                                                             "_peak_overlap"))]]
            assert np.isfinite(values.to_numpy(dtype=float)).all(), (table, site, df[cols])
        meta = json.loads((tiny_run / "results" / f"{table}.json").read_text())
        assert meta["code_version"] and meta["provenance"]["seeds"]["training"] == 0
        assert meta["inputs"] and all(len(h) == 64 for h in meta["inputs"].values())
    params = pd.read_csv(tiny_run / "results" / "tables" / "parameters.csv")
    assert {"architecture", "parameters", "paper_parameters"} <= set(params.columns)


def test_per_neuron_outputs_follow_the_contract(tiny_run):
    tiny_run, _ = tiny_run
    import xarray as xr

    d = tiny_run / "results" / "sim1" / "models" / "ff_sa_cnn_star_incr_fc1" / "f100"
    metrics = pd.read_csv(d / "metrics.csv")
    assert list(metrics.columns[:13]) == [
        "site", "model", "label", "fraction", "neuron", "corr", "pt_j", "pt_s",
        "peak_overlap", "feve", "cc_norm", "best_epoch", "n_val_images"]
    assert len(metrics) == 3 and metrics["pt_j"].between(0, 1).all()
    assert metrics["peak_overlap"].between(0, 1).all()
    cfg = assembled(TINY)
    n_chunks = -(-cfg["sites"]["sim1"]["simulate"]["n_neurons"] // cfg["chunk_size"])
    with xr.open_dataset(d / "predictions.nc") as ds:
        assert ds.sizes["neuron"] == 3
        assert json.loads(ds.attrs["chunks"]) == [f"{d.relative_to(tiny_run)}/chunk{k}/"
                                                  "predictions.nc" for k in range(n_chunks)]
    for k in range(n_chunks):
        assert (d / f"chunk{k}" / "weights.pt").exists()
        assert not (d / f"chunk{k}" / "checkpoint.pt").exists()  # removed on success


def test_groundtruth_and_claims_follow_their_contracts(tiny_run):
    from sacnn.claims import CLAIM_COLUMNS, read_claims
    from sacnn.groundtruth import GROUNDTRUTH_COLUMNS, read_groundtruth

    tiny_run, _ = tiny_run
    cfg = assembled(TINY)
    gt = read_groundtruth(tiny_run / "results" / "groundtruth.csv")
    assert list(gt.columns) == GROUNDTRUTH_COLUMNS
    gsites, gmodels = cfg["groundtruth"]["sites"], cfg["groundtruth"]["models"]
    assert len(gt) == len(gsites) * len(gmodels) * 3
    assert gt["corr_truth"].notna().all() and gt["ceiling"].notna().all()
    # the control site's truth has no surround; a surround site's truth has one
    off = gt[gt["site"] == "sim1_off"]
    assert (off["truth_suppression"].abs() < 1e-6).all()
    assert (off["truth_top_overlap"] == 1).all()
    assert (gt[gt["site"] == "sim1"]["truth_suppression"] > 0).all()
    ff = gt[gt["model"] == "ff_cnn"]  # weights were probed
    assert ff["aperture_corr"].notna().all() and ff["surround_mod_corr"].notna().all()
    meta = json.loads((tiny_run / "results" / "groundtruth.json").read_text())
    assert meta["provenance"]["seeds"]["training"] == 0 and meta["code_version"]

    claims = read_claims(tiny_run / "results" / "claims.csv")
    assert list(claims.columns) == CLAIM_COLUMNS
    effects = claims[claims["kind"] == "effect"]
    expected = [(t["claim"], s) for t in cfg["claims"]["tests"]
                for s in (t.get("sites") or cfg["claims"]["sites"])]
    assert list(zip(effects["claim"], effects["site"], strict=True)) == expected
    # a surround-dependent claim is also tested against sim1's control, sim1_off
    inter = claims[claims["kind"] == "interaction"]
    assert list(zip(inter["claim"], inter["site"], inter["control_site"], strict=True)) == [
        (t["claim"], "sim1", "sim1_off") for t in cfg["claims"]["tests"]
        if t.get("surround_dependent")]
    assert set(claims.loc[claims["site"] == "sim1_off", "site_surround"]) == {"none"}
    assert set(claims.loc[claims["site"] == "sim1", "site_surround"]) == {"x1"}
    # 3 neurons can never reach p < 0.05: every verdict says so instead of a finding
    assert claims["verdict"].str.startswith("undetermined").all()
    assert (tiny_run / "results" / "figures" / "groundtruth.png").stat().st_size > 0


def _injected_params(notebook: Path) -> dict:
    """The params_json papermill injected into an executed figure notebook."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            scope: dict = {}
            exec("".join(cell["source"]), scope)  # noqa: S102 - our own generated cell
            return json.loads(scope["params_json"])
    raise AssertionError(f"{notebook}: no injected parameters")


#: Figure settings a plotting module reads with a documented default (config may omit them).
OPTIONAL_FIGURE_SETTINGS = {"bias", "n_images", "n_top", "statistic", "zoom_fraction"}


def _params_read(module: Path) -> set[str]:
    text = module.read_text()
    keys = set(re.findall(r'params(?:\.get\(|\[)"(\w+)"', text))
    keys |= set(re.findall(r'need\(params, \w+, "params", "(\w+)"', text))
    return keys


def test_every_figure_parameter_the_plotting_code_reads_is_passed(tiny_run):
    """The contract between the workflow's figure params and sacnn.plots, on a real run (not
    a fixture): every key a plotting module reads is in what the rule passed."""
    tiny_run, _ = tiny_run
    if not notebooks_present():
        pytest.skip("figure notebooks not there")
    plots = ROOT / "src" / "sacnn" / "plots"
    shared = set().union(*(_params_read(m) for m in plots.glob("_*.py")))
    for fig in FIGURES:
        passed = set(_injected_params(tiny_run / "results" / "notebooks" / f"{fig}.ipynb"))
        read = (_params_read(plots / f"{fig}.py") | shared) - OPTIONAL_FIGURE_SETTINGS
        assert read <= passed, (fig, sorted(read - passed))
    assert "stages" in passed  # Fig. 3's inheritance and freezing come from the config


def test_schema_enums_are_the_codes_lists():
    """One list per concept: every enum the schema allows is what the code accepts."""
    from sacnn.analysis import EXAMPLE_RULES
    from sacnn.claims import MEASURES

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]
    rule = props["figures"]["properties"]["example_neuron"]["properties"]["rule"]["enum"]
    assert rule == list(EXAMPLE_RULES)
    measure = props["claims"]["properties"]["tests"]["items"]["properties"]["measure"]["enum"]
    assert measure == list(MEASURES)


def test_rerun_has_nothing_to_do(tiny_run):
    tiny_run, snakefile = tiny_run
    targets = [f"results/{t}.csv" for t in TABLE_ROWS]
    if notebooks_present():
        targets = []
    proc = snakemake(tiny_run, "-n", "--cores", "2", *targets, snakefile=snakefile)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_figures_and_report(tiny_run):
    tiny_run, snakefile = tiny_run
    if not notebooks_present():
        pytest.skip("workflow/notebooks/fig*.ipynb are not there yet: figure checks skipped")
    for fig in FIGURES:
        for path in (f"results/figures/{fig}.pdf", f"results/figures/{fig}.png",
                     f"results/notebooks/{fig}.ipynb"):
            assert (tiny_run / path).stat().st_size > 0, path
    snakemake(tiny_run, "--report", "report.html", snakefile=snakefile)
    assert (tiny_run / "report.html").stat().st_size > 0


# ------------------------------------------------- code changes, relocation, deployment


class _Edited:
    """Edit a file of the run's copy for the duration of a ``with`` block."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text

    def __enter__(self) -> Path:
        self.original = self.path.read_text()
        self.path.write_text(self.original + self.text)
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.write_text(self.original)


#: module of the run's copy -> the rules whose jobs an edit of what it does must rerun
#: (None: those rules and whatever reads their outputs; a dict: exactly these jobs).
CODE_EDITS = {
    "plots/fig5.py": {"figure": 1, "all": 1, "total": 2},
    "claims.py": {"claims": 1, "groundtruth_figure": 1, "all": 1, "total": 3},
    "tables.py": {"table": 4, "parameter_table": 1, "all": 1, "total": 6},
    "evaluation.py": ("evaluate_model", "table", "figure", "claims"),
    "metrics.py": ("train_chunk", "evaluate_model", "table", "claims", "groundtruth_site"),
    "training/trainer.py": ("train_chunk", "evaluate_model", "table", "figure"),
}


@pytest.mark.parametrize("module", list(CODE_EDITS))
def test_editing_the_code_reruns_what_it_computes_and_nothing_else(tiny_run, module):
    """Each rule's `code` param digests the modules it runs, so editing what a module does
    reruns the jobs that ran it (and their consumers), and an edit of comments or docstrings
    reruns nothing."""
    tiny_run, snakefile = tiny_run
    if not notebooks_present():
        pytest.skip("figure notebooks not there")
    path = snakefile.parents[1] / "src" / "sacnn" / module
    with _Edited(path, "\n# a comment only: nothing to rerun\n"):
        out = snakemake(tiny_run, "-n", "--cores", "2", snakefile=snakefile).stdout
        assert "Nothing to be done" in out, out[-2000:]
    with _Edited(path, "\n_AN_EDIT = 1\n"):
        proc = snakemake(tiny_run, "-n", "--cores", "2", snakefile=snakefile)
    counts = job_counts(proc.stdout + proc.stderr)
    expected = CODE_EDITS[module]
    if isinstance(expected, dict):
        assert counts == expected, counts
    else:
        assert set(expected) <= set(counts), counts
        assert "simulate_site" not in counts and "ingest_site" not in counts, counts
        if "train_chunk" not in expected:
            assert "train_chunk" not in counts, counts
    if module == "plots/fig5.py":
        assert "results/figures/fig5.pdf" in proc.stdout


def test_a_moved_checkout_with_its_results_plans_nothing(tiny_run, tmp_path):
    """No absolute path is an input or a compared param: moving the checkout and the
    results (mtimes kept) leaves nothing to do."""
    tiny_run, snakefile = tiny_run
    if not notebooks_present():
        pytest.skip("figure notebooks not there")
    base = tiny_run.parent
    moved = tmp_path / "elsewhere"
    shutil.copytree(base, moved, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # copy2: mtimes kept
    new_snakefile = moved / snakefile.relative_to(base)
    proc = snakemake(moved / tiny_run.name, "-n", "--cores", "2", snakefile=new_snakefile)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_the_workflow_runs_as_a_module_from_a_deployment_folder(tmp_path):
    """What snakedeploy generates: a folder with only config/ and a Snakefile that uses this
    workflow as a module. A dry run plans the whole matrix; a real run builds a figure
    (simulator, ingest, notebook found through Snakemake's source cache)."""
    deploy = workdir_with(tmp_path / "deploy", TINY)
    (deploy / "workflow").mkdir()
    (deploy / "workflow" / "Snakefile").write_text(
        'configfile: "config/config.yaml"\n\n\n'
        "module sacnn:\n"
        f'    snakefile:\n        "{SNAKEFILE}"\n'
        "    config:\n        config\n\n\n"
        "use rule * from sacnn\n")
    snakefile = deploy / "workflow" / "Snakefile"
    proc = snakemake(deploy, "-n", "--cores", "2", snakefile=snakefile, pythonpath=ROOT / "src")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["figure"] == len(FIGURES) and counts["claims"] == 1, counts
    snakemake(deploy, "--cores", "2", "results/figures/fig1b.png", snakefile=snakefile,
              pythonpath=ROOT / "src")
    assert (deploy / "results" / "figures" / "fig1b.png").stat().st_size > 0
    assert not (ROOT / "results" / "figures" / "fig1b.png").is_symlink()


def test_parsing_the_workflow_imports_neither_torch_nor_xarray(tmp_path):
    """The DAG's construction stays light: a dry run with torch and xarray made unimportable
    still plans every job."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor name in ('torch', 'xarray', 'scipy', 'matplotlib'):\n"
        "    sys.modules[name] = None\n")
    work = workdir_with(tmp_path / "work", TINY)
    proc = snakemake(work, "-n", "--cores", "2", pythonpath=blocker)
    assert job_counts(proc.stdout + proc.stderr)["train_chunk"] > 0


# ------------------------------------------------------------------ config overlays


def test_a_partial_configfile_is_an_overlay_on_the_default(tmp_path):
    work = workdir_with(tmp_path, TINY)
    (tmp_path / "overlay.yaml").write_text("training: {epochs: 8}\n")
    proc = snakemake(work, "results/sim1/models/rf_cnn/f100/chunk0/weights.pt", "-n", "-p",
                     "--cores", "2", "--configfile", "overlay.yaml")
    out = proc.stdout + proc.stderr
    assert '"epochs": 8' in out and '"channels": 4' in out  # overlay + the default's widths


def test_a_complete_configfile_replaces_the_default(tmp_path):
    work = workdir_with(tmp_path, TINY)
    cfg = assembled(TINY)
    del cfg["sites"]["sim1_off"]
    cfg["groundtruth"]["sites"] = ["sim1"]
    cfg["claims"] = None  # null: not part of this run (the matrix's claims left out)
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "-n", "--cores", "2", "--configfile", "other.yaml")
    assert "sim1_off" not in proc.stdout + proc.stderr


def test_config_values_on_the_command_line_are_coerced_or_explained(tmp_path):
    work = workdir_with(tmp_path, TINY)
    proc = snakemake(work, "results/sim1/models/rf_cnn/f100/chunk0/weights.pt", "-n", "-p",
                     "--cores", "2", "--config", "training={epochs: 8}", "chunk_size=2")
    out = proc.stdout + proc.stderr
    assert '"epochs": 8' in out and "--chunk-size 2" in out
    proc = snakemake(work, "-n", "--config", "chunk_size=many", check=False)
    assert proc.returncode != 0 and "chunk_size" in proc.stdout + proc.stderr


def test_architecture_values_on_the_command_line_get_the_specs_types_or_its_message(tmp_path):
    """The schema leaves architectures to spec_from_dict: `channels: 8` from --config (text)
    arrives as an integer, `channels: abc` is refused at `snakemake -n` by its key."""
    work = workdir_with(tmp_path, TINY)
    snakemake(work, "-n", "--cores", "2", "--config",
              "architectures={mine: {base: ff-CNN, channels: 8, dropout: 0.5}}")
    proc = snakemake(work, "-n", "--cores", "2", "--config",
                     "architectures={mine: {base: ff-CNN, channels: abc}}", check=False)
    assert proc.returncode != 0
    assert ("architectures.mine: architecture 'mine': setting 'channels': expected an "
            "integer, got 'abc' (str)") in proc.stdout + proc.stderr


def test_each_rules_code_param_digests_the_module_its_shell_runs():
    """A rule's `code` param names a sacnn command; its shell must run that command's module,
    or editing the module would not rerun the rule."""
    from sacnn.cli import COMMANDS

    seen = set()
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule \w+:)", smk.read_text()):
            named = re.findall(r'code=PLAN\.code\("([\w-]+)"\)', block)
            for command in named:
                assert f'"{COMMANDS[command].equivalent} ' in block.replace("\n", " "), (
                    smk.name, command)
                seen.add(command)
    assert seen == {"simulate", "ingest", "train", "evaluate", "tables", "groundtruth",
                    "claims", "groundtruth-figure"}


def test_every_registered_figure_has_its_module_and_its_generated_notebook(tmp_path):
    """The figure registry is the matrix's `figures` (config/matrix.yaml): each has its
    plotting module, the schema's pattern takes it, and its notebook is the one
    scripts/make_figure_notebooks.py writes from the registry (nothing else lists figures)."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    patterns = schema["properties"]["figures"]["patternProperties"]
    for name in [*FIGURES, "site", "example_neuron", "groundtruth"]:
        taken = any(re.fullmatch(p.strip("^$"), name) for p in patterns)
        assert taken == (name in FIGURES), name
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_figure_notebooks.py"),
                           "--out", str(tmp_path)], capture_output=True, text=True, check=True)
    assert f"wrote {len(FIGURES)} notebooks" in proc.stdout
    for fig in FIGURES:
        assert (ROOT / "src" / "sacnn" / "plots" / f"{fig}.py").exists()
        committed = ROOT / "workflow" / "notebooks" / f"{fig}.ipynb"
        assert committed.read_bytes() == (tmp_path / f"{fig}.ipynb").read_bytes(), fig
