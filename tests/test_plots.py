"""Every figure module renders from a tiny results tree; the notebooks run under papermill."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from fixtures_figures import restrict
from matplotlib.figure import Figure

from sacnn.plots._io import FigureInputError

ROOT = Path(__file__).resolve().parents[1]
TABLE1 = ["ff_cnn", "ff_sa_cnn", "rf_cnn", "rf_sa_cnn"]
TABLE2 = ["rf_cnn", "rf_sa_cnn_star_incr", "ff_sa_cnn_star_simul", "ff_sa_cnn_star_incr_fc1",
          "ff_sa_cnn_star_incr_fc2"]
FCL = ["ff_sa_cnn_star_simul", "ff_sa_cnn_star_incr_fc1", "ff_sa_cnn_star_incr_fc2"]
SA = ["rf_sa_cnn_star_incr", "ff_sa_cnn_star_simul", "ff_sa_cnn_star_incr_fc1",
      "ff_sa_cnn_star_incr_fc2"]

#: figure -> (sites, models, extra params), as the workflow's experiments would give them
CASES = {
    "fig1b": (["S1"], TABLE1, {}),
    "fig2": (["S1"], TABLE1, {}),
    "fig3": (["S1"], ["rf_cnn", "rf_sa_cnn_star_incr", "ff_sa_cnn_star_incr_fc1",
                      "ff_sa_cnn_star_incr_fc2"], {}),
    "fig4": (["S1"], TABLE1, {}),
    "fig5": (["S1", "S2"], TABLE1, {}),
    "fig6": (["S1", "S2"], TABLE2, {}),
    "fig7": (["S1"], FCL, {}),
    "fig8": (["S1", "S2"], TABLE1, {}),
    "fig9": (["S1"], ["ff_sa_cnn_star_incr_fc1", "ff_cnn"], {"statistic": "mean"}),
    "fig10": (["S1"], SA, {"example_neuron": {"rule": "max_pt_difference",
                                              "better": "ff_sa_cnn_star_incr_fc2",
                                              "worse": "rf_sa_cnn_star_incr"}}),
}


def render(name: str, inputs: dict, params: dict, out: Path) -> Figure:
    fig = importlib.import_module(f"sacnn.plots.{name}").make(inputs, params)
    assert isinstance(fig, Figure)
    fig.savefig(out / f"{name}.pdf")
    fig.savefig(out / f"{name}.png", dpi=80)
    for ext in ("pdf", "png"):
        assert (out / f"{name}.{ext}").stat().st_size > 1000
    return fig


@pytest.mark.parametrize("name", list(CASES))
def test_figure_renders(tree, tmp_path, name):
    sites, models, extra = CASES[name]
    inputs, params = restrict(tree, sites, models, **extra)
    # the workflow passes both dicts through JSON
    inputs, params = json.loads(json.dumps(inputs)), json.loads(json.dumps(params))
    fig = render(name, inputs, params, tmp_path)
    assert fig.axes


def test_missing_input_is_named(tree, tmp_path):
    inputs, params = restrict(tree, ["S1"], TABLE1)
    del inputs["predictions"]["S1"]["rf_cnn"]
    with pytest.raises(FigureInputError, match=r"fig4: inputs\['predictions'\]\['S1'\]"
                                               r"\['rf_cnn'\] is missing"):
        importlib.import_module("sacnn.plots.fig4").make(inputs, params)
    inputs, params = restrict(tree, ["S1"], FCL)
    del inputs["weights"]
    with pytest.raises(FigureInputError, match=r"inputs\['weights'\]"):
        importlib.import_module("sacnn.plots.fig7").make(inputs, params)


def test_example_rule_without_metrics_or_predictions_says_what_it_needs(tree):
    inputs, params = restrict(tree, ["S1"], TABLE1)
    inputs = {"datasets": inputs["datasets"]}
    with pytest.raises(FigureInputError, match=r"needs inputs\['metrics'\]\['S1'\]"):
        importlib.import_module("sacnn.plots.fig1b").make(inputs, params)


def test_explicit_neuron_needs_only_the_dataset(tree, tmp_path):
    inputs, params = restrict(tree, ["S1"], TABLE1, example_neuron={"neuron": 3})
    render("fig1b", {"datasets": inputs["datasets"]}, params, tmp_path)


def test_fig3_needs_the_stage_settings_the_workflow_passes(tree, tmp_path):
    from sacnn.plots._io import FigureInputError

    _, params = restrict(tree, ["S1"], CASES["fig3"][1])
    del params["stages"]
    with pytest.raises(FigureInputError, match="stages"):
        render("fig3", {}, params, tmp_path)


def test_generated_notebooks_are_current(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_figure_notebooks.py"),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    for name in CASES:
        committed = ROOT / "workflow" / "notebooks" / f"{name}.ipynb"
        assert committed.read_text() == (tmp_path / f"{name}.ipynb").read_text(), (
            f"{committed} differs from scripts/make_figure_notebooks.py's output: rerun it")
        nb = nbformat.read(committed, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert nb.metadata["kernelspec"]["language"] == "python"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1
        for var in ("inputs_json", "params_json", "out_pdf", "out_png"):
            assert f"{var} = " in tagged[0].source
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_notebook_runs_under_papermill(tree, tmp_path):
    papermill = pytest.importorskip("papermill")
    inputs, params = restrict(tree, ["S1", "S2"], TABLE1)
    out_pdf, out_png = tmp_path / "fig5.pdf", tmp_path / "fig5.png"
    papermill.execute_notebook(
        str(ROOT / "workflow" / "notebooks" / "fig5.ipynb"), str(tmp_path / "fig5.ipynb"),
        parameters={"inputs_json": json.dumps(inputs), "params_json": json.dumps(params),
                    "out_pdf": str(out_pdf), "out_png": str(out_png)},
        kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    assert out_pdf.stat().st_size > 1000 and out_png.stat().st_size > 1000


def test_pt_bars_say_when_zero_is_below_resolution(tmp_path):
    """An all-zero PT panel explains itself instead of showing empty bars; each bar carries
    the top images it is made of."""
    import numpy as np
    import pandas as pd

    from sacnn.evaluation import METRIC_COLUMNS

    metrics = {}
    for model, pt in (("a", [0.0] * 4), ("b", [0.0] * 4)):
        path = tmp_path / f"{model}.csv"
        pd.DataFrame({"site": "S", "model": model, "label": model, "fraction": "f100",
                      "neuron": range(4), "corr": np.linspace(0.1, 0.4, 4), "pt_j": pt,
                      "pt_s": pt, "peak_overlap": [1 / 3, 0, 0, 0] if model == "a" else pt,
                      "feve": 0.0, "cc_norm": 0.0, "best_epoch": 1,
                      "n_val_images": 300, "pt_k": 3})[METRIC_COLUMNS].to_csv(path, index=False)
        metrics.setdefault("S", {})[model] = str(path)
    fig = importlib.import_module("sacnn.plots.fig5").make(
        {"metrics": metrics}, {"sites": ["S"], "models": ["a", "b"], "fraction": "f100"})
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum("below" in t and "top-3 threshold" in t and "8.3 %" in t for t in texts) == 2
    assert "0.0\n0/12" in texts
    # the third panel, the peak overlap, found one recorded top image: 1 of 12, no note
    assert len(fig.axes) == 3 and "scale-free, not in the paper" in fig.axes[2].get_ylabel()
    assert [t.get_text() for t in fig.axes[2].texts] == ["8.3\n1/12", "0.0\n0/12"]
    assert "not in the paper" in fig._suptitle.get_text()


def test_pt_figures_name_a_metrics_file_without_the_overlap(tmp_path):
    import pandas as pd

    path = tmp_path / "old.csv"
    pd.DataFrame({"site": ["S"], "model": "a", "neuron": [0], "corr": 0.1, "pt_j": 0.0,
                  "pt_s": 0.0, "pt_k": 3}).to_csv(path, index=False)
    with pytest.raises(FigureInputError, match=r"fig6: .*old\.csv: column\(s\) "
                                               r"\['peak_overlap'\] missing"):
        importlib.import_module("sacnn.plots.fig6").make(
            {"metrics": {"S": {"a": str(path)}}}, {"sites": ["S"], "models": ["a"]})


def test_groundtruth_figure_says_na_and_flags_a_violated_control(tmp_path):
    """The claims panel reads what sacnn.claims writes: the demo config's spec through the
    plan, in-memory values, claims.csv written and read back."""
    import numpy as np
    import pandas as pd

    from sacnn import plan
    from sacnn.claim_values import MemoryValues
    from sacnn.claims import evaluate, read_claims
    from sacnn.groundtruth import GROUNDTRUTH_COLUMNS
    from sacnn.plots.groundtruth import RECOVERY, make
    from sacnn.workflow_config import load_config

    assert set(RECOVERY) <= set(GROUNDTRUTH_COLUMNS)  # the heat map reads groundtruth.csv
    gt = pd.DataFrame([{c: np.nan for c in GROUNDTRUTH_COLUMNS} | {
        "site": "s", "model": "rf", "label": "rf-CNN", "neuron": "0", "corr": 0.3}])
    config = load_config([ROOT / "config" / "config.yaml"])
    spec = plan.WorkflowPlan(config).claims_spec()
    spec["tests"] = [t for t in spec["tests"] if t["claim"] == "sa_correlation"]
    ids = [str(i) for i in range(12)]
    base = np.linspace(0.1, 0.4, 12)
    gain = {"sim1": 0.0, "sim2": 0.0, "sim1_strong": 0.0, "sim1_off": 0.05}
    values = MemoryValues({(s, m, "f100", "corr"): pd.Series(
        base - (gain[s] if m == "ff_sa_cnn" else 0) + 0.001 * (-1) ** np.arange(12), index=ids)
        for s in gain for m in ("ff_sa_cnn", "ff_cnn")})
    evaluate(spec, values).to_csv(tmp_path / "claims.csv", index=False)
    claims = read_claims(tmp_path / "claims.csv")
    fig = make(gt, claims)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "n/a" in texts and "0.30" in texts
    assert "contradicted - control VIOLATED" in texts
    assert "supported" in texts  # sim1 minus its control: the deficit is the control's only
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert "sa_correlation [corr] @ sim1 - sim1_off" in labels


def test_fig1b_population_share_above_half_peak():
    import numpy as np

    from sacnn.simulate.realism import half_peak_shares

    r = np.array([[1.0, 0.2, 0.6, 0.1], [0.0, 0.0, 0.0, 0.0], [2.0, 1.5, 0.1, 0.1]])
    np.testing.assert_allclose(half_peak_shares(r), [0.5, np.nan, 0.5])


def test_fig4_says_which_rule_picked_its_neuron(tree, tmp_path):
    inputs, params = restrict(tree, ["S1"], TABLE1,
                              example_neuron={"rule": "max_pt_difference"})
    fig = render("fig4", inputs, params, tmp_path)
    assert "picked by max_pt_difference" in fig.axes[0].get_title()
    inputs, params = restrict(tree, ["S1"], TABLE1, example_neuron={"neuron": 3})
    assert "chosen explicitly" in render("fig4", inputs, params, tmp_path).axes[0].get_title()


# -- Fig. 7: where the readout bias goes; Fig. 9: which average -----------------------------

@pytest.mark.parametrize("model", FCL)
def test_fig7_terms_sum_to_the_network_output_wherever_the_bias_is_drawn(tree, model):
    """centre + surround + bias is the networks' own output (ranked per neuron, averaged);
    folding the bias into the centre or the surround moves it there and nowhere else."""
    import numpy as np
    import torch

    from sacnn.analysis import load_networks
    from sacnn.data import open_dataset
    from sacnn.plots.fig7 import BIAS_MODES, decomposed_curves

    inputs, _ = restrict(tree, ["S1"], [model])
    images = open_dataset(inputs["datasets"]["S1"])["val_images"].values
    weights = inputs["weights"]["S1"][model]
    _, nets = load_networks(weights)
    x = torch.from_numpy(images).double().unsqueeze(1)
    with torch.no_grad():
        out = np.stack([np.sort(net(x).numpy())[::-1] for net in nets]).mean(axis=0)
    curves = {mode: decomposed_curves(weights, images, mode) for mode in BIAS_MODES}
    sep = curves["separate"]
    b = float(sep["readout_bias"])
    assert b != 0  # a trained readout has a bias: the test below would not see a misplaced 0
    np.testing.assert_allclose(sep["prediction"], out, atol=1e-12)
    np.testing.assert_allclose(sep["centre"] + sep["surround"] + sep["bias"], out, atol=1e-12)
    np.testing.assert_allclose(sep["bias"], b, atol=1e-12)
    for mode, other in (("centre", "surround"), ("surround", "centre")):
        c = curves[mode]
        np.testing.assert_allclose(c["centre"] + c["surround"], out, atol=1e-12)
        np.testing.assert_array_equal(c["bias"], 0.0)
        np.testing.assert_allclose(c[mode], sep[mode] + b, atol=1e-12)
        np.testing.assert_allclose(c[other], sep[other], atol=1e-12)
        assert float(c["readout_bias"]) == pytest.approx(b)


def test_fig7_says_where_the_bias_is_drawn(tree, tmp_path):
    inputs, params = restrict(tree, ["S1"], FCL)
    fig = render("fig7", inputs, params, tmp_path)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["prediction", "centre", "surround (sum)", "readout bias"]
    assert "centre + surround + bias" in fig._suptitle.get_text()
    assert all(any(t.get_text().startswith("bias = ") for t in ax.texts) for ax in fig.axes)
    fig = render("fig7", inputs, dict(params, bias="centre"), tmp_path)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["prediction", "centre + bias", "surround (sum)"]
    assert "bias counted in the centre" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match=r"figures\.fig7\.bias.*'middle'"):
        render("fig7", inputs, dict(params, bias="middle"), tmp_path)


def test_fig9_statistic_changes_what_is_averaged(tree, tmp_path):
    """mean_abs (default) averages magnitudes, mean the signed terms: |mean| <= mean |.|,
    strictly somewhere on a trained network, and the title names the statistic."""
    import numpy as np

    from sacnn.data import open_dataset
    from sacnn.plots.fig9 import STATISTICS, contribution_map

    inputs, params = restrict(tree, ["S1"], ["ff_sa_cnn_star_simul"])
    images = open_dataset(inputs["datasets"]["S1"])["val_images"].values
    weights = inputs["weights"]["S1"]["ff_sa_cnn_star_simul"]
    signed = contribution_map(weights, images, "mean")
    magnitude = contribution_map(weights, images, "mean_abs")
    assert np.all(np.abs(signed) <= magnitude + 1e-12)
    assert np.any(np.abs(signed) < magnitude - 1e-9)
    titles = {s: render("fig9", inputs, dict(params, **({"statistic": s} if s else {})),
                        tmp_path)._suptitle.get_text() for s in (None, *STATISTICS)}
    assert titles[None] == titles["mean_abs"] != titles["mean"]
    assert STATISTICS["mean"] in titles["mean"]
    with pytest.raises(ValueError, match="statistic"):
        render("fig9", inputs, dict(params, statistic="median"), tmp_path)


def test_figure_setting_enums_are_the_codes_lists():
    """Each figure setting's schema enum is exactly what its plotting module accepts."""
    import yaml

    from sacnn.plots.fig7 import BIAS_MODES
    from sacnn.plots.fig9 import STATISTICS

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    figs = schema["properties"]["figures"]["properties"]
    assert figs["fig7"]["properties"]["bias"]["enum"] == list(BIAS_MODES)
    assert figs["fig9"]["properties"]["statistic"]["enum"] == list(STATISTICS)
    # no schema default: the code's default applies and a run's params stay as they were
    assert "default" not in figs["fig7"]["properties"]["bias"]
    assert "default" not in figs["fig9"]["properties"]["statistic"]


def test_figure_settings_in_the_config_reach_the_plotting_code():
    """figures.fig7.bias / figures.fig9.statistic pass the schema, travel in the figure's
    params_json (sacnn.plan) and are what the plotting code reads; without them the code's
    default applies."""
    import jsonschema
    import yaml

    from sacnn import experiment, plan
    from sacnn.plots.fig7 import bias_mode
    from sacnn.workflow_config import load_config

    schema_path = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    config = load_config([ROOT / "tests" / "workflow" / "config.yaml"])
    notebooks = {f: f"{f}.ipynb" for f in experiment.figures(config)}
    params = plan.WorkflowPlan(config, notebooks).figure_params("fig7")
    assert "bias" not in params and bias_mode(params) == "separate"
    config["figures"]["fig7"]["bias"] = "surround"
    config["figures"]["fig9"]["statistic"] = "mean"
    jsonschema.validate(config, yaml.safe_load(schema_path.read_text()))
    p = plan.WorkflowPlan(config, notebooks)
    assert bias_mode(json.loads(json.dumps(p.figure_params("fig7")))) == "surround"
    assert p.figure_params("fig9")["statistic"] == "mean"
