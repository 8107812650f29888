"""Simulated V1 neurons: Gabor centre, divisive normalisation, a surround of one of two kinds,
sparse output.

Model (per neuron i, image I on the 50x50 model grid, luminance relative to mean grey):
    E    = centre energy: simple 2*[<I, g_phase>]_+^2, complex <I, g_e>^2 + <I, g_o>^2
    N_c  = untuned centre pool (SF-weighted bank energies near the RF, inside the aperture)
    surround_kind "divisive" (Coen-Cagli et al. 2012, 2015):
      N_s  = orientation-tuned surround pool (bank energies on rings outside the aperture)
      q    = MGSM gate: posterior that centre and surround share one mixer
    surround_kind "collinear" (association field: Field, Hayes & Hess 1993; Kapadia et al. 1995):
      F    = iso-oriented bank energy at surround positions along the neuron's preferred edge
             axis (the two collinear end zones, not the flanks)
    D    = E' (1 + w F') / (sigma + w_c N_c' + q w N_s')    (' = divided by the training
                                   mean; F' = 0 for the divisive kind, q N_s' = 0 for collinear)
    r    = min(([D - theta]_+ / scale) ** p, R_CAP)          (theta, p calibrated per neuron)
w = surround_strength * w_surround, where w_surround is solved per neuron so that the aperture
response correlates ``aperture_corr`` with the full response on the training images.
Centre-only truths: ``r_centre`` drops the surround term; ``r_aperture`` runs the full model
on the image with grey outside the analysis aperture. The surround filters are blind inside the
aperture and the centre-pool filters outside it, so the aperture truth is the centre's alone.

The filter bank is one matrix: every quantity is a GEMM of flattened images, chunk by chunk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sacnn.seeding import numpy_rng
from sacnn.simulate.calibration import (
    SOLVE_IMAGES,
    corr_cols,
    output_constants,
    respond,
    solve_weights,
)
from sacnn.simulate.config import SURROUND_KINDS
from sacnn.simulate.filters import (
    BANK_SF,
    MODEL_SIZE,
    N_ORI,
    SUBNORMAL,
    aperture_mask,
    bank,
    bank_positions,
    gabor_pair,
    gate_weights,
    grid_centre,
    log_gsm,
)

N_C_DIMS = 2
N_S_DIMS = 16
COLLINEAR_KAPPA_POS = 3.0
"""Association field: position weight exp(k (cos 2(phi - axis) - 1)) around the preferred edge
axis; half-height at +-17 degrees, flanks (90 degrees off) at exp(-6)."""
COLLINEAR_KAPPA_ORI = 4.0
"""Facilitation by iso-oriented energy: channels 22.5 degrees off weigh 0.31, 45 off 0.02."""
PARAM_FIELDS = (
    "x0", "y0", "theta", "sf", "sigma_x", "sigma_y", "phase", "is_complex", "w_c",
    "kappa", "surround_extent", "pi_dep", "sigma", "threshold_quantile", "target_half_peak",
    "aperture_corr",
)
CALIB_FIELDS = {
    "divisive": ("s_c", "s_s", "e_mean", "nc_mean", "ns_mean", "w_surround", "threshold",
                 "scale", "power"),
    "collinear": ("e_mean", "nc_mean", "nf_mean", "w_surround", "threshold", "scale", "power"),
}
#: raw filter quantities each surround kind needs (read-out inputs)
RAW_KEYS = {"divisive": ("E", "xc2", "Nc", "Ns", "xs2"), "collinear": ("E", "Nc", "Nf")}


@dataclass
class Population:
    """Neuron parameters, calibration constants and the analysis aperture: a truth oracle."""

    params: dict[str, np.ndarray]
    aperture_radius: float
    calib: dict[str, np.ndarray] = field(default_factory=dict)
    surround_strength: float = 1.0
    surround_kind: str = "divisive"

    def __post_init__(self) -> None:
        if self.surround_kind not in SURROUND_KINDS:
            raise ValueError(f"surround_kind: expected one of {', '.join(SURROUND_KINDS)}, "
                             f"got {self.surround_kind!r}")

    @property
    def n(self) -> int:
        return int(self.params["x0"].size)

    # ----------------------------------------------------------------- construction
    @classmethod
    def sample(
        cls, n: int, seed: int, *, complex_fraction: float = 0.6, rf_scatter: float = 1.0,
        sigma_range: tuple[float, float] = (1.2, 2.5),
        half_peak_range: tuple[float, float] = (0.004, 0.01),
        threshold_quantile_range: tuple[float, float] = (0.80, 0.95),
        aperture_corr_range: tuple[float, float] = (0.88, 0.92),
        aperture_radius: float = 7.0, surround_strength: float = 1.0,
        surround_kind: str = "divisive",
    ) -> Population:
        """Parameters drawn from the seed alone, whatever the surround kind and strength, so
        that the sites of one seed differ only in their surround."""
        rng = numpy_rng(seed, "neurons")
        c = grid_centre()
        f = np.exp(rng.uniform(np.log(0.08), np.log(0.25), n))
        nx = rng.uniform(0.25, 0.6, n)
        ny = rng.uniform(0.3, 0.9, n)
        lo, hi = sigma_range
        lh = np.log(half_peak_range)
        p = {
            "x0": c + rng.normal(0, rf_scatter, n),
            "y0": c + rng.normal(0, rf_scatter, n),
            "theta": rng.uniform(0, np.pi, n),
            "sf": f,
            "sigma_x": np.clip(nx / f, lo, hi),
            "sigma_y": np.clip(ny / f, lo, hi),
            "phase": rng.uniform(0, 2 * np.pi, n),
            "is_complex": (rng.random(n) < complex_fraction).astype(np.float64),
            "w_c": rng.uniform(0.2, 1.0, n),
            "kappa": rng.uniform(1.0, 3.0, n),
            "surround_extent": rng.uniform(2.0, 3.5, n),
            "pi_dep": rng.uniform(0.3, 0.7, n),
            "sigma": np.full(n, 0.1),
            "threshold_quantile": rng.uniform(*threshold_quantile_range, n),
            "target_half_peak": np.exp(rng.uniform(lh[0], lh[1], n)),
            "aperture_corr": rng.uniform(*aperture_corr_range, n),
        }
        return cls(params=p, aperture_radius=float(aperture_radius),
                   surround_strength=float(surround_strength), surround_kind=surround_kind)

    # ----------------------------------------------------------------- filters
    def _build(self) -> None:
        if getattr(self, "_W", None) is not None:
            return
        P = self.params
        pos, ring, _ = bank_positions()
        mask = aperture_mask(self.aperture_radius).ravel()
        cols = [gabor_pair(P["x0"][i], P["y0"][i], P["theta"][i], P["sf"][i],
                            P["sigma_x"][i], P["sigma_y"][i]) for i in range(self.n)]
        ge = np.stack([a for a, _ in cols], axis=1)
        go = np.stack([b for _, b in cols], axis=1)
        W = np.concatenate([ge, go, bank(pos, ring, mask)], axis=1)
        W[np.abs(W) < SUBNORMAL] = 0.0  # float32 subnormals make the GEMM ~10x slower
        Wm = W * mask[:, None]
        self._nz = np.flatnonzero(np.any(Wm != 0, axis=0))
        self._W = W.astype(np.float32)
        self._Wm = Wm[:, self._nz].astype(np.float32)
        self._pools = {k: v.reshape(-1, self.n).astype(np.float32)
                       for k, v in self._pool_weights(pos, ring).items()}

    def _pool_weights(self, pos: np.ndarray, ring: np.ndarray) -> dict[str, np.ndarray]:
        """Weights (channel, position, neuron) of the pools over bank energies."""
        P = self.params
        oris = np.arange(N_ORI) * np.pi / N_ORI
        ch_sf = np.repeat(np.array(BANK_SF), N_ORI)
        ch_ori = np.tile(oris, len(BANK_SF))
        sfw = np.exp(-0.5 * (np.log2(ch_sf[:, None] / P["sf"][None, :])) ** 2)  # (n_ch, n)
        rc = 2 * np.maximum(P["sigma_x"], P["sigma_y"])
        dx, dy = pos[:, 0:1] - P["x0"][None, :], pos[:, 1:2] - P["y0"][None, :]
        d2 = dx ** 2 + dy ** 2
        cwin = np.exp(-0.5 * d2 / (rc / 2) ** 2) * (ring[:, None] <= 1)
        swin = np.exp(-0.5 * d2 / (P["surround_extent"] * rc) ** 2) * (ring[:, None] >= 2)
        dori = ch_ori[:, None] - P["theta"][None, :]
        out = {"Nc": sfw[:, None, :] * cwin[None, :, :]}
        if self.surround_kind == "divisive":
            otune = np.exp(P["kappa"][None, :] * (np.cos(2 * dori) - 1))
            out["Ns"] = (sfw * otune)[:, None, :] * swin[None, :, :]
            out["xs2"] = gate_weights(P["sf"], P["theta"], len(pos))
        else:
            # the preferred edge runs across the carrier direction theta, at theta + pi/2
            axis = np.arctan2(dy, dx) - (P["theta"][None, :] + np.pi / 2)
            zones = np.exp(COLLINEAR_KAPPA_POS * (np.cos(2 * axis) - 1))
            otune = np.exp(COLLINEAR_KAPPA_ORI * (np.cos(2 * dori) - 1))
            out["Nf"] = (sfw * otune)[:, None, :] * (swin * zones)[None, :, :]
        return out

    def _raw_chunk(self, x: np.ndarray, masked: bool) -> dict[str, np.ndarray]:
        """Filter outputs for flattened images ``x`` (c, 2500), luminance minus mean grey."""
        n = self.n
        if masked:
            y = np.zeros((x.shape[0], self._W.shape[1]), dtype=np.float32)
            y[:, self._nz] = x @ self._Wm
        else:
            y = x @ self._W
        le, lo, b = y[:, :n], y[:, n:2 * n], y[:, 2 * n:]
        bank_e = b[:, 0::2] ** 2 + b[:, 1::2] ** 2
        lphase = np.cos(self.params["phase"]).astype(np.float32) * le + \
            np.sin(self.params["phase"]).astype(np.float32) * lo
        xc2 = le * le + lo * lo
        cplx = self.params["is_complex"].astype(bool)
        e = np.where(cplx, xc2, 2 * np.maximum(lphase, 0) ** 2)
        out = {"E": e, "xc2": xc2}
        out.update({k: bank_e @ w for k, w in self._pools.items()})
        return {k: out[k] for k in RAW_KEYS[self.surround_kind]}

    def raw(self, images50: np.ndarray, chunk: int = 4096) -> dict[str, dict[str, np.ndarray]]:
        """Raw filter quantities (image, neuron) for the full and the aperture-masked images.

        ``images50``: (N, 50, 50) grey levels in [0, 1] (uint8 / 255 after area averaging).
        """
        self._build()
        n_img = images50.shape[0]
        keys = RAW_KEYS[self.surround_kind]
        out = {m: {k: np.empty((n_img, self.n), np.float32) for k in keys}
               for m in ("full", "aperture")}
        for s in range(0, n_img, chunk):
            x = images50[s:s + chunk].reshape(-1, MODEL_SIZE * MODEL_SIZE).astype(np.float32)
            x = x - np.float32(0.5)
            for m in ("full", "aperture"):
                res = self._raw_chunk(x, masked=(m == "aperture"))
                for k in keys:
                    out[m][k][s:s + chunk] = res[k]
        return out

    # ----------------------------------------------------------------- calibration
    def calibrate(self, raw_train: dict[str, dict[str, np.ndarray]]) -> None:
        """Set per-neuron constants from the training images: the pools' scales, the surround
        weight (solved for the neuron's ``aperture_corr``), threshold, scale and power."""
        full = raw_train["full"]

        def mean(k: str) -> np.ndarray:
            return np.maximum(full[k].mean(0, dtype=np.float64), 1e-12)

        c = {"e_mean": mean("E"), "nc_mean": mean("Nc")}
        if self.surround_kind == "divisive":
            c.update(s_c=mean("xc2") / (2 * N_C_DIMS), s_s=mean("xs2") / (2 * N_S_DIMS),
                     ns_mean=mean("Ns"))
        else:
            c["nf_mean"] = mean("Nf")
        self.calib = c
        c["w_surround"] = (self._solve_weights(raw_train) if self.surround_strength > 0
                           else np.zeros(self.n))
        d = _map_chunks(full, lambda m: {"D": self._drive(m)["D"]})["D"]
        c.update(output_constants(d, self.params["threshold_quantile"],
                                  self.params["target_half_peak"]))

    def _solve_weights(self, raw_train: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
        """Per neuron, the surround weight at which its noiseless aperture response
        correlates ``aperture_corr`` with its full response on the first SOLVE_IMAGES
        training images, the output's threshold and power re-solved at each weight."""
        P = self.params
        terms = {m: self._terms({k: v[:SOLVE_IMAGES] for k, v in raw_train[m].items()})
                 for m in raw_train}

        def aperture_corr(w: np.ndarray) -> np.ndarray:
            d = {m: _combine(terms[m], w)[0] for m in terms}
            k = output_constants(d["full"], P["threshold_quantile"], P["target_half_peak"])
            return corr_cols(respond(d["full"], k), respond(d["aperture"], k))

        return solve_weights(aperture_corr, P["aperture_corr"])

    # ----------------------------------------------------------------- read-out
    def _gate(self, m: dict[str, np.ndarray]) -> np.ndarray:
        c = self.calib
        lc2 = m["xc2"] / c["s_c"][None, :]
        ls2 = m["xs2"] / c["s_s"][None, :]
        lc = np.sqrt(np.maximum(lc2, 0))
        ls = np.sqrt(np.maximum(ls2, 0))
        lcs = np.sqrt(np.maximum(lc2 + ls2, 0))
        log_ratio = (log_gsm(lcs, N_C_DIMS + N_S_DIMS) - log_gsm(lc, N_C_DIMS)
                     - log_gsm(ls, N_S_DIMS))
        pi = self.params["pi_dep"][None, :]
        z = np.log(pi / (1 - pi)) + log_ratio
        return (1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))).astype(np.float32)

    def _terms(self, m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The drive's parts, D = e (1 + w fac) / (base + w sup): ``fac`` (facilitation) and
        ``sup`` (suppression, gate included) are 0 for the other kind; ``gate`` the MGSM gate
        (divisive kind only)."""
        c, P = self.calib, self.params
        e = m["E"] / c["e_mean"][None, :]
        base = P["sigma"][None, :] + P["w_c"][None, :] * (m["Nc"] / c["nc_mean"][None, :])
        if self.surround_kind == "divisive":
            q = self._gate(m)
            return {"e": e, "base": base, "fac": np.zeros_like(e),
                    "sup": q * (m["Ns"] / c["ns_mean"][None, :]), "gate": q}
        return {"e": e, "base": base, "fac": m["Nf"] / c["nf_mean"][None, :],
                "sup": np.zeros_like(e)}

    def _drive(self, m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The drive D, the drive without the surround term (``D_centre``) and the gate: the
        MGSM gate (divisive) or the share of the drive the facilitation adds (collinear)."""
        t = self._terms(m)
        w = self.surround_strength * self.calib["w_surround"]
        d, share = _combine(t, w)
        return {"D": d, "D_centre": t["e"] / t["base"], "gate": t.get("gate", share)}

    def _output(self, d: np.ndarray) -> np.ndarray:
        return respond(d, self.calib)

    def drives(self, images50: np.ndarray) -> dict[str, np.ndarray]:
        """Drives (neuron, image) before the output nonlinearity, on the full images: ``D``,
        ``D_centre`` and ``gate`` (as :meth:`_drive`); for in-silico probes and checks."""
        if not self.calib:
            raise RuntimeError("population is not calibrated")
        out = _map_chunks(self.raw(images50)["full"], self._drive)
        return {k: np.ascontiguousarray(v.T) for k, v in out.items()}

    def truth(self, raw: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Noiseless responses (neuron, image): r_true, r_centre, r_aperture and the gate."""
        def full(m):
            d = self._drive(m)
            return {"r_true": self._output(d["D"]), "r_centre": self._output(d["D_centre"]),
                    "gate": d["gate"]}

        out = _map_chunks(raw["full"], full)
        out["r_aperture"] = _map_chunks(
            raw["aperture"], lambda m: {"r": self._output(self._drive(m)["D"])})["r"]
        # (neuron, image), keys in a fixed order
        return {k: np.ascontiguousarray(out[k].T)
                for k in ("r_true", "r_centre", "r_aperture", "gate")}

    def __call__(self, images50: np.ndarray) -> dict[str, np.ndarray]:
        """Oracle: the true model on new (N, 50, 50) images in [0, 1]."""
        if not self.calib:
            raise RuntimeError("population is not calibrated")
        return self.truth(self.raw(images50))

    # ----------------------------------------------------------------- persistence
    def to_json_dict(self) -> dict[str, Any]:
        return {
            "aperture_radius": self.aperture_radius,
            "surround_strength": self.surround_strength,
            "surround_kind": self.surround_kind,
            "params": {k: np.asarray(v).tolist() for k, v in self.params.items()},
            "calibration": {k: np.asarray(v).tolist() for k, v in self.calib.items()},
        }

    @classmethod
    def from_json(cls, path: str | Path) -> Population:
        """The population written by :meth:`to_json_dict`; a file from an older simulator
        (another model) is refused, naming what it lacks."""
        data = json.loads(Path(path).read_text())
        kind = data.get("surround_kind", "divisive")  # missing: an older, divisive simulator
        if kind not in SURROUND_KINDS:
            raise ValueError(f"{path}: field 'surround_kind': expected one of "
                             f"{', '.join(SURROUND_KINDS)}, got {kind!r}")
        missing = [k for k in ("aperture_radius", "surround_strength", "surround_kind")
                   if k not in data]
        missing += [f"params.{k}" for k in PARAM_FIELDS if k not in data.get("params", {})]
        missing += [f"calibration.{k}" for k in CALIB_FIELDS[kind]
                    if k not in data.get("calibration", {})]
        if missing:
            raise ValueError(f"{path}: not a population of this simulator (no {missing[:4]}); "
                             "regenerate the site with python -m sacnn.simulate")
        return cls(
            params={k: np.asarray(v, dtype=np.float64) for k, v in data["params"].items()},
            aperture_radius=float(data["aperture_radius"]),
            calib={k: np.asarray(v, dtype=np.float64) for k, v in data["calibration"].items()},
            surround_strength=float(data["surround_strength"]), surround_kind=kind,
        )


def _combine(t: dict[str, np.ndarray], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drive D = e (1 + w fac) / (base + w sup) for per-neuron weights ``w``, and the share
    of it that the facilitation adds, w fac / (1 + w fac)."""
    wf = w[None, :] * t["fac"]
    d = t["e"] * (1.0 + wf) / (t["base"] + w[None, :] * t["sup"])
    return d, wf / (1.0 + wf)


def _map_chunks(m: dict[str, np.ndarray], fn, chunk: int = 8192) -> dict[str, np.ndarray]:
    """Apply ``fn`` to image chunks of (image, neuron) arrays; float64 temporaries stay small."""
    n_img = next(iter(m.values())).shape[0]
    out: dict[str, np.ndarray] = {}
    for s in range(0, n_img, chunk):
        part = fn({k: v[s:s + chunk] for k, v in m.items()})
        for k, v in part.items():
            if k not in out:
                out[k] = np.empty((n_img, *v.shape[1:]), dtype=np.float32)
            out[k][s:s + chunk] = v
    return out


