"""Simulated V1 neurons: Gabor centre, divisive normalisation, MGSM-gated surround, sparse output.

Model (per neuron i, image I on the 50x50 model grid, luminance relative to mean grey):
    E    = centre energy: simple 2*[<I, g_phase>]_+^2, complex <I, g_e>^2 + <I, g_o>^2
    N_c  = untuned centre pool (SF-weighted bank energies near the RF)
    N_s  = orientation-tuned surround pool (bank energies on rings outside the aperture)
    q    = MGSM gate: posterior that centre and surround share one mixer (Coen-Cagli et al.)
    D    = E' / (sigma + w_c N_c' + q * w_s N_s')           (' = divided by training mean)
    r    = ([D - theta]_+ / scale) ** p                      (theta, p calibrated per neuron)
Centre-only truths: ``r_centre`` drops the surround term; ``r_aperture`` runs the full model
on the image with grey outside the analysis aperture (the surround filters are blind inside
it, so the gate closes there).

The filter bank is one matrix: every quantity is a GEMM of flattened images, chunk by chunk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import kve

from sacnn.seeding import numpy_rng

MODEL_SIZE = 50
N_ORI = 8
BANK_SF = (0.08, 0.14, 0.25)
RING1 = (4.0, 8)  # radius (px), positions: centre pool
RING2 = (10.0, 16)  # near surround (gate uses every other position)
RING3 = (16.0, 16)  # far surround
N_C_DIMS = 2
N_S_DIMS = 16
SUBNORMAL = 1e-6
REF_TOP = 0.001  # share of training images with r >= 1
MAX_POWER = 3.0  # steeper outputs leave sparse neurons silent on a 300-image validation set
PARAM_FIELDS = (
    "x0", "y0", "theta", "sf", "sigma_x", "sigma_y", "phase", "is_complex", "w_c", "w_s",
    "kappa", "surround_extent", "pi_dep", "sigma", "threshold_quantile", "target_half_peak",
)
CALIB_FIELDS = ("s_c", "s_s", "e_mean", "nc_mean", "ns_mean", "threshold", "scale", "power")


def _centre() -> float:
    return (MODEL_SIZE - 1) / 2.0


def _grid() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:MODEL_SIZE, 0:MODEL_SIZE].astype(np.float64)
    return yy, xx


def aperture_mask(radius: float) -> np.ndarray:
    """Disc of ``radius`` px around the image centre (50x50 grid): the analysis aperture."""
    yy, xx = _grid()
    c = _centre()
    return (yy - c) ** 2 + (xx - c) ** 2 <= radius ** 2


def _gabor_pair(x0, y0, theta, f, sx, sy) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean quadrature Gabors, flattened (2500,). sx is along the carrier direction."""
    yy, xx = _grid()
    dx, dy = xx - x0, yy - y0
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    env = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    ge = env * np.cos(2 * np.pi * f * u)
    go = env * np.sin(2 * np.pi * f * u)
    ge -= env * (ge.sum() / env.sum())  # no response to uniform luminance
    return ge.ravel(), go.ravel()


def bank_positions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_pos, 2) positions (x, y), the ring of each (0 centre, 1..3), and gate positions."""
    c = _centre()
    pos = [(c, c)]
    ring = [0]
    for k, (radius, count) in enumerate((RING1, RING2, RING3), start=1):
        for j in range(count):
            a = 2 * np.pi * j / count
            pos.append((c + radius * np.cos(a), c + radius * np.sin(a)))
            ring.append(k)
    ring_arr = np.array(ring)
    gate = np.flatnonzero(ring_arr == 2)[::2]
    return np.array(pos), ring_arr, gate


@dataclass
class Population:
    """Neuron parameters, calibration constants and the analysis aperture: a truth oracle."""

    params: dict[str, np.ndarray]
    aperture_radius: float
    calib: dict[str, np.ndarray] = field(default_factory=dict)
    surround_strength: float = 1.0

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
        aperture_radius: float = 6.0, surround_strength: float = 1.0,
    ) -> Population:
        rng = numpy_rng(seed, "neurons")
        c = _centre()
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
            "w_s": np.exp(rng.normal(np.log(1.5), 0.5, n)),
            "kappa": rng.uniform(1.0, 3.0, n),
            "surround_extent": rng.uniform(2.0, 3.5, n),
            "pi_dep": rng.uniform(0.3, 0.7, n),
            "sigma": np.full(n, 0.1),
            "threshold_quantile": rng.uniform(*threshold_quantile_range, n),
            "target_half_peak": np.exp(rng.uniform(lh[0], lh[1], n)),
        }
        return cls(params=p, aperture_radius=float(aperture_radius),
                   surround_strength=float(surround_strength))

    # ----------------------------------------------------------------- filters
    def _build(self) -> None:
        if getattr(self, "_W", None) is not None:
            return
        P = self.params
        n = self.n
        pos, ring, gate_pos = bank_positions()
        mask = aperture_mask(self.aperture_radius).ravel()
        cols = []
        for i in range(n):
            cols.append(_gabor_pair(P["x0"][i], P["y0"][i], P["theta"][i], P["sf"][i],
                                    P["sigma_x"][i], P["sigma_y"][i]))
        ge = np.stack([a for a, _ in cols], axis=1)
        go = np.stack([b for _, b in cols], axis=1)
        oris = np.arange(N_ORI) * np.pi / N_ORI
        bank = []  # order: (sf, ori, pos, quadrature)
        for f in BANK_SF:
            s = float(np.clip(0.5 / f, 1.2, 3.5))
            for th in oris:
                for k, (x, y) in enumerate(pos):
                    a, b = _gabor_pair(x, y, th, f, s, s)
                    if ring[k] >= 2:  # surround filters are blind inside the aperture
                        a = np.where(mask, 0.0, a)
                        b = np.where(mask, 0.0, b)
                    bank.extend([a, b])
        bank = np.stack(bank, axis=1)
        W = np.concatenate([ge, go, bank], axis=1)
        W[np.abs(W) < SUBNORMAL] = 0.0  # float32 subnormals make the GEMM ~10x slower
        Wm = W * mask[:, None]
        self._nz = np.flatnonzero(np.any(Wm != 0, axis=0))
        self._W = W.astype(np.float32)
        self._Wm = Wm[:, self._nz].astype(np.float32)
        n_ch = len(BANK_SF) * N_ORI
        n_pos = len(pos)
        self._bank_shape = (n_ch, n_pos)
        # pooling matrices over bank energies (n_ch * n_pos, n)
        ch_sf = np.repeat(np.array(BANK_SF), N_ORI)
        ch_ori = np.tile(oris, len(BANK_SF))
        sfw = np.exp(-0.5 * (np.log2(ch_sf[:, None] / P["sf"][None, :])) ** 2)  # (n_ch, n)
        rc = 2 * np.maximum(P["sigma_x"], P["sigma_y"])
        d2 = (pos[:, 0:1] - P["x0"][None, :]) ** 2 + (pos[:, 1:2] - P["y0"][None, :]) ** 2
        cwin = np.exp(-0.5 * d2 / (rc / 2) ** 2) * (ring[:, None] <= 1)
        swin = np.exp(-0.5 * d2 / (P["surround_extent"] * rc) ** 2) * (ring[:, None] >= 2)
        otune = np.exp(P["kappa"][None, :] * (np.cos(2 * (ch_ori[:, None] - P["theta"][None, :]))
                                              - 1))
        Wc = sfw[:, None, :] * cwin[None, :, :]
        Ws = (sfw * otune)[:, None, :] * swin[None, :, :]
        # gate: the bank channel closest to the neuron's orientation and SF, at 8 ring-2 spots
        sf_idx = np.argmin(np.abs(np.log(np.array(BANK_SF))[:, None] - np.log(P["sf"])[None, :]),
                           axis=0)
        dori = np.abs(((oris[:, None] - P["theta"][None, :]) + np.pi / 2) % np.pi - np.pi / 2)
        ori_idx = np.argmin(dori, axis=0)
        Wg = np.zeros((n_ch, n_pos, n))
        for i in range(n):
            Wg[sf_idx[i] * N_ORI + ori_idx[i], gate_pos, i] = 1.0
        self._Wc = Wc.reshape(-1, n).astype(np.float32)
        self._Ws = Ws.reshape(-1, n).astype(np.float32)
        self._Wg = Wg.reshape(-1, n).astype(np.float32)

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
        return {"E": e, "xc2": xc2, "Nc": bank_e @ self._Wc, "Ns": bank_e @ self._Ws,
                "xs2": bank_e @ self._Wg}

    def raw(self, images50: np.ndarray, chunk: int = 4096) -> dict[str, dict[str, np.ndarray]]:
        """Raw filter quantities (image, neuron) for the full and the aperture-masked images.

        ``images50``: (N, 50, 50) grey levels in [0, 1] (uint8 / 255 after area averaging).
        """
        self._build()
        n_img = images50.shape[0]
        keys = ("E", "xc2", "Nc", "Ns", "xs2")
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
        """Set per-neuron constants from the training images (scales, threshold, power)."""
        full = raw_train["full"]
        P = self.params
        c = {
            "s_c": np.maximum(full["xc2"].mean(0, dtype=np.float64) / (2 * N_C_DIMS), 1e-12),
            "s_s": np.maximum(full["xs2"].mean(0, dtype=np.float64) / (2 * N_S_DIMS), 1e-12),
            "e_mean": np.maximum(full["E"].mean(0, dtype=np.float64), 1e-12),
            "nc_mean": np.maximum(full["Nc"].mean(0, dtype=np.float64), 1e-12),
            "ns_mean": np.maximum(full["Ns"].mean(0, dtype=np.float64), 1e-12),
        }
        self.calib = c
        d = _map_chunks(full, lambda m: {"D": self._drive(m)["D"]})["D"]
        thr = np.array([np.quantile(d[:, i], P["threshold_quantile"][i]) for i in range(self.n)])
        above = np.maximum(d - thr[None, :], 0)
        # r = 1 at the top-0.1 % level rather than at the single largest image, so that the
        # peak of a 300-1000-image validation set sits near 1 instead of far below it
        scale = np.maximum(np.quantile(above, 1 - REF_TOP, axis=0), 1e-12)
        u = above / scale[None, :]
        q = np.array([np.quantile(u[:, i], 1 - P["target_half_peak"][i]) for i in range(self.n)])
        q = np.clip(q, 1e-6, 1 - 1e-6)
        # solved so that a share target_half_peak of training images has r > 0.5
        power = np.clip(np.log(0.5) / np.log(q), 0.2, MAX_POWER)
        c.update(threshold=thr, scale=scale, power=power)

    # ----------------------------------------------------------------- read-out
    def _gate(self, m: dict[str, np.ndarray]) -> np.ndarray:
        c = self.calib
        lc2 = m["xc2"] / c["s_c"][None, :]
        ls2 = m["xs2"] / c["s_s"][None, :]
        lc = np.sqrt(np.maximum(lc2, 0))
        ls = np.sqrt(np.maximum(ls2, 0))
        lcs = np.sqrt(np.maximum(lc2 + ls2, 0))
        log_ratio = (_log_gsm(lcs, N_C_DIMS + N_S_DIMS) - _log_gsm(lc, N_C_DIMS)
                     - _log_gsm(ls, N_S_DIMS))
        pi = self.params["pi_dep"][None, :]
        z = np.log(pi / (1 - pi)) + log_ratio
        return (1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))).astype(np.float32)

    def _drive(self, m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        c, P = self.calib, self.params
        e = m["E"] / c["e_mean"][None, :]
        nc = m["Nc"] / c["nc_mean"][None, :]
        ns = m["Ns"] / c["ns_mean"][None, :]
        q = self._gate(m)
        ws = P["w_s"][None, :] * self.surround_strength
        base = P["sigma"][None, :] + P["w_c"][None, :] * nc
        return {"D": e / (base + q * ws * ns), "D_centre": e / base, "gate": q}

    def _output(self, d: np.ndarray) -> np.ndarray:
        c = self.calib
        u = np.maximum(d - c["threshold"][None, :], 0) / c["scale"][None, :]
        return (u ** c["power"][None, :]).astype(np.float32)

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
            "params": {k: np.asarray(v).tolist() for k, v in self.params.items()},
            "calibration": {k: np.asarray(v).tolist() for k, v in self.calib.items()},
        }

    @classmethod
    def from_json(cls, path: str | Path) -> Population:
        data = json.loads(Path(path).read_text())
        return cls(
            params={k: np.asarray(v, dtype=np.float64) for k, v in data["params"].items()},
            aperture_radius=float(data["aperture_radius"]),
            calib={k: np.asarray(v, dtype=np.float64) for k, v in data["calibration"].items()},
            surround_strength=float(data["surround_strength"]),
        )


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


# -------------------------------------------------------------------- GSM density (Bessel table)
_LOGLAM = np.linspace(np.log(1e-4), np.log(1e4), 4000)
_TABLES: dict[float, np.ndarray] = {}


def _log_kve_table(nu: float) -> np.ndarray:
    if nu not in _TABLES:
        _TABLES[nu] = np.log(kve(nu, np.exp(_LOGLAM)))
    return _TABLES[nu]


def _log_gsm(lam: np.ndarray, n: int) -> np.ndarray:
    """log p(x) + (n/2) log 2pi for a Rayleigh-mixer GSM with identity covariance.

    p(x) = (2 pi)^(-n/2) lam^(1 - n/2) K_(n/2 - 1)(lam),  lam = |x|. log K_nu is interpolated
    from a table of log kve (4000 points in log lam), far cheaper than calling the Bessel
    function per entry.
    """
    nu = abs(n / 2 - 1)
    lam = np.clip(lam.astype(np.float64), 1e-4, 1e4)
    loglam = np.log(lam)
    logk = np.interp(loglam, _LOGLAM, _log_kve_table(nu)) - lam
    return (1 - n / 2) * loglam + logk
