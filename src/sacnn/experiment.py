"""The experiment matrix of a workflow config: which (site, model, fraction) cells are trained.

One home for what the workflow (``workflow/rules/common.smk``) and the cost projection
(``sacnn.cost``) both need to know about a config: the cells each table and figure
reads, the incremental chain a model starts from, and the training jobs they imply. Pure
config logic: no torch, no data files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sacnn.settings import WorkflowConfigError

TABLES = ("table1", "table2", "table3", "tableA")
#: Keys of the ``figures`` section that are settings of every figure, not figures.
FIGURE_SETTINGS = ("site", "example_neuron")

Cell = tuple[str, str, str]  # (site, model, fraction such as "f100")
NO_SURROUND = "none"
""":func:`site_surround` of a control site whose neurons have no surround."""
SEED_MARK = ".seed"


def tables(config: Mapping[str, Any]) -> list[str]:
    """The paper tables the config asks for (its ``experiments``), in the paper's order."""
    return [t for t in TABLES if t in (config.get("experiments") or {})]


def is_pairs_table(spec: Mapping[str, Any]) -> bool:
    """Whether a table entry compares ``rows`` of (model, versus) pairs (the appendix's
    tableA) rather than ``models`` against one ``baseline``: the one test of a table's kind."""
    return "rows" in spec


def table_cells(config: Mapping[str, Any], table: str) -> list[Cell]:
    """(site, model, fraction) cells a table reads."""
    spec = config["experiments"][table]
    if is_pairs_table(spec):
        models = [m for row in spec["rows"] for m in (row["model"], row["versus"])]
    else:
        models = [*spec["models"], spec["baseline"]]
    fractions = spec.get("fractions") or [spec.get("fraction", "f100")]
    return [(s, m, f) for s in spec["sites"] for m in dict.fromkeys(models) for f in fractions]


def figure_site(config: Mapping[str, Any]) -> str:
    """The site of single-site figures: ``figures.site``, else Table 1's first, else the
    config's first site."""
    table1 = (config.get("experiments") or {}).get("table1")
    return (config.get("figures") or {}).get("site") or (
        table1["sites"][0] if table1 else next(iter(config["sites"])))


def figures(config: Mapping[str, Any]) -> list[str]:
    """The figures the config asks for, in its order (the matrix's: the paper's): every key
    of ``figures`` but the settings of all of them. The figure registry is that section of
    config/matrix.yaml; a figure is its line there, ``sacnn.plots.<fig>`` and its notebook."""
    return [f for f in (config.get("figures") or {}) if f not in FIGURE_SETTINGS]


def figure_sites(config: Mapping[str, Any], fig: str) -> list[str]:
    return config["figures"][fig].get("sites") or [figure_site(config)]


def figure_models(config: Mapping[str, Any], fig: str) -> list[str]:
    return config["figures"][fig].get("models") or []


def all_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Every (site, model, fraction) that some table or figure reads."""
    cells = [c for t in tables(config) for c in table_cells(config, t)]
    figs = figures(config)
    cells += [(s, m, "f100") for f in figs for s in figure_sites(config, f)
              for m in figure_models(config, f)]
    if figs:
        example = config["figures"]["example_neuron"].get("models") or []
        cells += [(figure_site(config), m, "f100") for m in example]
    cells += groundtruth_cells(config) + claims_cells(config)
    return list(dict.fromkeys(cells))


# ------------------------------------------------------------- ground truth and claims


def groundtruth_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Cells set against a simulated site's truth (``groundtruth`` section; none without)."""
    spec = config.get("groundtruth") or {}
    return [(s, m, "f100") for s in spec.get("sites") or [] for m in spec.get("models") or []]


def claim_sites(config: Mapping[str, Any], claim: Mapping[str, Any]) -> list[str]:
    """The sites a claim is tested on: its own ``sites``, else the section's."""
    return list(claim.get("sites") or config["claims"].get("sites") or [])


def claim_fractions(claim: Mapping[str, Any]) -> list[str]:
    ref = claim.get("reference_fraction")
    return [claim.get("fraction", "f100"), *([ref] if ref else [])]


def claim_seeds(config: Mapping[str, Any], claim: Mapping[str, Any]) -> int:
    """Training seeds per model of a claim: its own ``seeds``, else the section's (1)."""
    return int(claim.get("seeds") or config["claims"].get("seeds") or 1)


def replicate_name(model: str, seed: int) -> str:
    """The model key of training seed ``seed`` (1-based) of ``model``: the model itself for
    seed 1, ``<model>.seed<k>`` after it (a key no config can use: names have no dot)."""
    return model if seed == 1 else f"{model}{SEED_MARK}{seed}"


def claim_replicates(config: Mapping[str, Any], claim: Mapping[str, Any], model: str
                     ) -> list[str]:
    """The keys of every training seed of ``model`` in ``claim``."""
    return [replicate_name(model, k) for k in range(1, claim_seeds(config, claim) + 1)]


def all_models(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's models plus the extra training seeds the claims ask for.

    Seed ``k`` of a model is the same entry under :func:`replicate_name`, its ``init_from``
    pointing at seed ``k`` of the parent stage, so a replicate re-runs the whole chain; its
    training seeds differ because every seed is derived from the model key.
    """
    models = dict(config["models"])
    spec = config.get("claims") or {}
    for claim in spec.get("tests") or []:
        for k in range(2, claim_seeds(config, claim) + 1):
            for m in (claim["model"], claim["versus"]):
                for stage in model_chain(config["models"], m):
                    entry = dict(config["models"][stage])
                    if entry.get("init_from"):
                        entry["init_from"] = replicate_name(entry["init_from"], k)
                    entry["label"] = f"{entry.get('label') or stage} [seed {k}]"
                    models[replicate_name(stage, k)] = entry
    return models


def claims_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Cells the ``claims`` section compares, every training seed (none without it)."""
    spec = config.get("claims") or {}
    return list(dict.fromkeys(
        (s, r, f) for c in spec.get("tests") or [] for s in claim_sites(config, c)
        for m in (c["model"], c["versus"]) for r in claim_replicates(config, c, m)
        for f in claim_fractions(c)))


def claims_sites(config: Mapping[str, Any]) -> list[str]:
    spec = config.get("claims") or {}
    return list(dict.fromkeys(s for c in spec.get("tests") or []
                              for s in claim_sites(config, c)))


def site_surround(config: Mapping[str, Any], site: str) -> str:
    """What surround a site's neurons have: ``none`` (a control, whatever its kind),
    ``x<strength>`` for a simulated site with the divisive surround (its
    ``surround_strength``), ``collinear x<strength>`` for one with the collinear facilitation,
    ``recorded`` for real data (unknown)."""
    from sacnn.simulate.config import SiteConfig  # light: settings only

    sim = config["sites"][site].get("simulate")
    if sim is None:
        return "recorded"
    cfg = SiteConfig.from_dict(sim, where=f"sites.{site}.simulate")
    if not cfg.surround or cfg.surround_strength == 0:
        return NO_SURROUND
    strength = f"x{cfg.surround_strength:g}"
    return strength if cfg.surround_kind == "divisive" else f"{cfg.surround_kind} {strength}"


#: Simulate settings a control may differ in from its site: those of the surround (whether,
#: how strong, which kind, and how much of the response it may explain, which sets its
#: weight), the site's name and the generator's chunk size (memory only: the same numbers).
#: A name the simulator does not know is simply never there.
CONTROL_MAY_DIFFER = ("site", "chunk", "surround", "surround_strength", "surround_kind",
                      "aperture_corr_range")


def site_controls(config: Mapping[str, Any], site: str) -> list[str]:
    """The controls of ``site``: the other simulated sites whose surround is
    :data:`NO_SURROUND` and whose settings are otherwise the same (seed, n_neurons, n_train,
    n_val, repeats, photos, sparseness, noise, ...: every :class:`SiteConfig` field but
    :data:`CONTROL_MAY_DIFFER`), so they have the same neurons' centres, stimuli and noise
    and a neuron id names the same neuron on both. A recorded site, or a site that is itself
    without surround, has none. In the config's order."""
    from sacnn.simulate.config import SiteConfig  # light: settings only

    def fixed(name: str) -> dict[str, Any] | None:
        sim = config["sites"][name].get("simulate")
        if sim is None:
            return None
        settings = SiteConfig.from_dict(sim, where=f"sites.{name}.simulate").to_dict()
        return {k: v for k, v in settings.items() if k not in CONTROL_MAY_DIFFER}

    own = fixed(site)
    if own is None or site_surround(config, site) == NO_SURROUND:
        return []
    return [s for s in config["sites"] if s != site and fixed(s) == own
            and site_surround(config, s) == NO_SURROUND]


def model_chain(models: Mapping[str, Mapping[str, Any]], model: str) -> list[str]:
    """``model`` and the stages it is initialised from, earliest first."""
    out = [model]
    while models[out[0]].get("init_from"):
        parent = models[out[0]]["init_from"]
        if parent not in models:
            raise WorkflowConfigError(f"models.{out[0]}.init_from: unknown model {parent!r}")
        if parent in out:
            raise WorkflowConfigError(f"models.{model}: init_from forms a cycle {out}")
        out.insert(0, parent)
    return out


def trained_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Every cell that is trained: those read, and the earlier stages they start from."""
    cells = []
    models = all_models(config)
    for s, m, f in all_cells(config):
        cells += [(s, stage, f) for stage in model_chain(models, m)]
    return list(dict.fromkeys(cells))


def fraction_value(fraction: str) -> float:
    """``f25`` -> 0.25: the share of the training images a cell is trained on."""
    return int(fraction[1:]) / 100


# ------------------------------------------------------------------ training chunks


def chunk_bounds(n_neurons: int, chunk_size: int) -> list[tuple[int, int]]:
    """[start, stop) of each training job's neurons: the one owner of chunk geometry (the
    workflow's jobs, the training command's slice and the cost projection read it).

    ``ceil(n / chunk_size)`` chunks as equal as possible, the larger first (302 neurons in
    chunks of at most 50: 44 + 6 x 43, not 6 x 50 + 2). A neuron's seeds do not depend on
    its chunk (``sacnn.training.neuron_seed``), only on its id.
    """
    if chunk_size < 1 or n_neurons < 1:
        raise WorkflowConfigError(f"chunk_size must be >= 1 and a site needs neurons, got "
                                    f"chunk_size {chunk_size} for {n_neurons} neurons")
    k = math.ceil(n_neurons / chunk_size)
    base, extra = divmod(n_neurons, k)
    bounds, start = [], 0
    for i in range(k):
        stop = start + base + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def n_chunks(n_neurons: int, chunk_size: int) -> int:
    """Training jobs per (site, model, fraction)."""
    return len(chunk_bounds(n_neurons, chunk_size))


def _family(models: Mapping[str, Mapping[str, Any]], model: str) -> set[str]:
    """``model`` and every model linked to it through ``init_from`` (either way)."""
    family, todo = set(), [model]
    while todo:
        m = todo.pop()
        if m in family:
            continue
        family.add(m)
        parent = models[m].get("init_from")
        todo += ([parent] if parent in models else []) + \
            [c for c, spec in models.items() if spec.get("init_from") == m]
    return family


def model_chunk_size(config: Mapping[str, Any], model: str) -> int:
    """Neurons per training job of ``model``: ``chunk_sizes[<its architecture>]``, else
    ``chunk_size``; the smallest over its incremental family, because a stage reads the
    weights of its parent's chunk of the same index, so a chain must be chunked alike."""
    models = all_models(config)
    sizes = config.get("chunk_sizes") or {}
    known = {spec["architecture"] for spec in models.values()}
    unknown = sorted(set(sizes) - known)
    if unknown:
        raise WorkflowConfigError(f"chunk_sizes: {unknown} is not the architecture of any "
                                    f"model; the models' architectures are {sorted(known)}")
    return min(int(sizes.get(models[m]["architecture"], config["chunk_size"]))
               for m in _family(models, model))
