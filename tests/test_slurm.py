"""End to end on a real single-node SLURM cluster: `snakemake --profile slurm_gpu`.

The module starts munged, slurmctld and slurmd on this machine (scripts/slurm_test_cluster.sh,
fake GPUs as character devices), runs the tiny workflow config through the repository's
slurm_gpu profile, and stops every daemon it started. It needs root and Debian's slurm
packages (.ci/run installs them); elsewhere it is skipped. Every snakemake call is bounded
in time (SIGINT, then SIGKILL) and a failure prints the SLURM and Snakemake logs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import xarray as xr
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_test_cluster.sh"
BIN = Path(sys.executable).parent
TINY = ROOT / "tests" / "workflow" / "config.yaml"

pytestmark = pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("slurmctld")
         and shutil.which("sbatch") and shutil.which("munged")),
    reason="needs root and Debian's slurmctld/slurmd/munge (.ci/run installs them)")


def cluster_logs() -> str:
    proc = subprocess.run([str(SCRIPT), "logs"], capture_output=True, text=True, check=False)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def cluster():
    proc = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, timeout=180,
                          check=False)
    if proc.returncode != 0:
        subprocess.run([str(SCRIPT), "down"], timeout=120, check=False)
        pytest.fail(f"could not start the test cluster:\n{proc.stdout}\n{proc.stderr}")
    try:
        yield
    finally:
        subprocess.run([str(SCRIPT), "down"], timeout=120, check=False)
    # the test cluster's config is gone with it: a later `snakemake` must not wait for a
    # controller that no longer runs (the SLURM plugin asks it when it loads)
    conf = Path("/etc/slurm/slurm.conf")
    assert not conf.exists() or "sacnn" not in conf.read_text().splitlines()[0]


def workdir(tmp_path: Path, changes: dict) -> Path:
    config = yaml.safe_load(TINY.read_text())
    for key, value in changes.items():
        config[key] = value
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


def slurm_logs(work: Path) -> str:
    out = []
    for log in sorted((work / ".snakemake" / "slurm_logs").rglob("*.log")):
        out.append(f"== {log.relative_to(work)}\n{log.read_text()[-1500:]}")
    return "\n".join(out[-8:])


def profile_command(work: Path) -> list[str]:
    """snakemake with the repository's profile; targets go last, after ``--``-free options."""
    return [str(BIN / "snakemake"), "-s", str(ROOT / "workflow" / "Snakefile"),
            "--directory", str(work), "--profile", str(ROOT / "slurm_gpu"),
            # fast polling for the test; the profile keeps the plugin's default for clusters
            "--slurm-init-seconds-before-status-checks", "3",
            "--default-resources", "mem_mb=1000", "runtime=10",
            "--set-threads", "train_chunk=1", "--set-resources", "train_chunk:mem_mb=1000",
            "--verbose", "--"]


def run_profile(work: Path, *args: str, timeout: int = 420) -> subprocess.CompletedProcess:
    """snakemake --profile <repo>/slurm_gpu, bounded: SIGINT at the limit, then SIGKILL."""
    cmd = [*profile_command(work), *args]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # snakemake ignores SIGTERM while jobs run
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        subprocess.run(["scancel", "--user", "root"], check=False)
        pytest.fail(f"snakemake timed out after {timeout}s:\n{out[-5000:]}\n"
                    f"{slurm_logs(work)}\n{cluster_logs()}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def test_profile_trains_on_slurm_and_builds_the_table(cluster, tmp_path):
    work = workdir(tmp_path, {})
    proc = run_profile(work, "results/table1.csv")
    assert proc.returncode == 0, (f"{proc.stdout[-6000:]}\n{slurm_logs(work)}\n"
                                  f"{cluster_logs()}")
    assert (work / "results" / "table1.csv").exists()
    # The training jobs ran inside SLURM allocations: each records its job id.
    chunks = sorted((work / "results").glob("*/models/*/f100/chunk*/predictions.nc"))
    assert len(chunks) == 8  # 2 sites x 4 Table-1 models x 1 chunk
    job_ids = set()
    for path in chunks:
        with xr.open_dataset(path) as ds:
            assert ds.attrs["slurm_job_id"].isdigit(), path
            job_ids.add(ds.attrs["slurm_job_id"])
    assert len(job_ids) == 8
    logs = list((work / ".snakemake" / "slurm_logs" / "rule_train_chunk").rglob("*.log"))
    assert {p.stem for p in logs} >= job_ids


def _train_job_ids() -> list[str]:
    proc = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True,
                          check=False)
    return [line.split("|")[0] for line in proc.stdout.splitlines()
            if "train_chunk" in line and "RUNNING" in line]


def test_cancelled_training_job_is_retried_and_resumes_from_its_checkpoint(cluster, tmp_path):
    work = workdir(tmp_path, {"training": {"epochs": 60, "batch_size": 50, "seed": 0}})
    target = "results/sim1/models/ff_cnn/f100/chunk0/predictions.nc"
    ckpt = work / "results/sim1/models/ff_cnn/f100/chunk0/checkpoint.pt"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [*profile_command(work), target]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 240
        cancelled = None
        while time.time() < deadline and proc.poll() is None:
            if ckpt.exists():
                try:
                    epoch = torch.load(ckpt, weights_only=True)["epoch"]
                except Exception:  # noqa: BLE001 - being replaced right now: look again
                    epoch = 0
                ids = _train_job_ids()
                if epoch >= 3 and ids:
                    subprocess.run(["scancel", ids[0]], check=True)
                    cancelled = (ids[0], epoch)
                    break
            time.sleep(0.5)
        if not cancelled:
            proc.kill()
            out, _ = proc.communicate(timeout=60)
            pytest.fail(f"the training job never got far enough to be cancelled:\n{out[-5000:]}"
                        f"\n{slurm_logs(work)}")
        out, _ = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        subprocess.run(["scancel", "--user", "root"], check=False)
        pytest.fail(f"snakemake did not finish:\n{out[-5000:]}\n{slurm_logs(work)}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"{out[-6000:]}\n{slurm_logs(work)}\n{cluster_logs()}"
    log = (work / "results/logs/train/sim1/ff_cnn/f100/chunk0.log").read_text()
    assert "resuming" in log, log[-3000:]
    with xr.open_dataset(work / target) as ds:
        job = ds.attrs["slurm_job_id"]
        assert job.isdigit() and job != cancelled[0]  # finished by the retried job
        assert int(ds["best_epoch"].max()) >= 1
    assert not ckpt.exists()  # removed once the run completed
