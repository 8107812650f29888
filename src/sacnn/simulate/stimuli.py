"""Offline stimuli: crops of the photos that ship with sacnn (or of a user's folder of
photos, such as ImageNet), and dead-leaves images.

Nothing is downloaded: the bundled photos are files of this package (``photos/``, their
sources and licences in ``photos/README.md``), each checked against the SHA-256 recorded here
when read. A user's folder (``image_dir``) is listed, a seeded sample of at most
``max_photos`` of its JPEG/PNG files is used and each file's SHA-256 is recorded. Images are
100x100 grey levels in [0, 1] until they are stored as uint8.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sacnn.fileio import sha256_file
from sacnn.seeding import numpy_rng

STIM_SIZE = 100

#: Where the bundled photos are: files of this package (declared as package data).
PHOTO_DIR = Path(__file__).resolve().parent / "photos"

# name -> (file in PHOTO_DIR, SHA-256, licence; source and author per photo: photos/README.md).
# The order is the order crops draw photos in: keep it, or seeded sites change.
PHOTOS: dict[str, tuple[str, str, str]] = {
    "astronaut": ("astronaut.png",
                  "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", "public domain"),
    "camera": ("camera.png",
               "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a", "CC0"),
    "chelsea": ("chelsea.png",
                "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", "CC0"),
    "coffee": ("coffee.png",
               "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", "CC0"),
    "rocket": ("rocket.jpg",
               "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", "public domain"),
    "grass": ("grass.png",
              "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89", "CC0"),
    "gravel": ("gravel.png",
               "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12", "CC0"),
    "brick": ("brick.png",
              "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf", "CC0"),
    "coins": ("coins.png",
              "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba",
              "no known copyright restrictions"),
    "china": ("china.jpg",
              "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29", "CC-BY 2.0"),
    "flower": ("flower.jpg",
               "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638", "CC-BY 2.0"),
    "grace_hopper": ("grace_hopper.jpg",
                     "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
                     "public domain (U.S. Navy photograph)"),
}

CROP_FRACTIONS = (1 / 2, 1 / 3, 1 / 4, 1 / 6, 1 / 8)
MIN_CROP_STD = 0.02


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class PhotoIntegrityError(RuntimeError):
    """A photo is missing, unreadable, or its bytes differ from the pinned SHA-256."""


USER_PHOTO = "user-supplied"


@dataclass(frozen=True)
class PhotoSource:
    """A photo a site crops from, with the SHA-256 its bytes must have when read: pinned for
    a bundled photo, taken when a user's folder is listed (and recorded in provenance)."""

    name: str
    path: Path
    sha256: str
    licence: str = USER_PHOTO


def photo_path(name: str) -> Path:
    return PHOTO_DIR / PHOTOS[name][0]


def bundled_photo(name: str) -> PhotoSource:
    """A photo that ships with sacnn."""
    _, sha256, licence = PHOTOS[name]
    return PhotoSource(name, photo_path(name), sha256, licence)


def bundled_photos() -> dict[str, PhotoSource]:
    """The photos that ship with sacnn, by name."""
    return {name: bundled_photo(name) for name in PHOTOS}


def folder_photos(image_dir: str | Path, max_photos: int, seed: int) -> dict[str, PhotoSource]:
    """The JPEG/PNG files under ``image_dir`` (subfolders too, e.g. ImageNet's classes), by
    path relative to it; a seeded sample of ``max_photos`` of them when there are more."""
    root = Path(image_dir)
    if not root.is_dir():
        raise PhotoIntegrityError(f"image_dir {root}: not a folder")
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise PhotoIntegrityError(
            f"image_dir {root}: {len(files)} JPEG/PNG file(s), expected at least 2 (photos "
            "for training and for validation)")
    if len(files) > max_photos:
        pick = numpy_rng(seed, "image_dir_photos").choice(len(files), max_photos, replace=False)
        files = [files[i] for i in sorted(pick)]
    names = [p.relative_to(root).as_posix() for p in files]
    return {n: PhotoSource(n, p, sha256_file(p)) for n, p in zip(names, files, strict=True)}


def read_photo(source: PhotoSource) -> np.ndarray:
    """Grey photo in [0, 1] (float32), after checking its bytes against ``source.sha256``."""
    from PIL import Image, UnidentifiedImageError

    path = source.path
    bundled = source.licence != USER_PHOTO
    if not path.exists():
        raise PhotoIntegrityError(f"photo '{source.name}': {path} is missing"
                                  + (" (sacnn installed without its package data?)"
                                     if bundled else ""))
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        hint = ("the photo that ships with sacnn was changed: restore it (git checkout, or "
                "reinstall sacnn)" if bundled
                else "the file changed while the site was simulated")
        raise PhotoIntegrityError(
            f"photo '{source.name}': {path} has SHA-256 {digest}, expected {source.sha256}; "
            f"{hint}")
    try:
        with Image.open(path) as im:
            grey = im.convert("L")
            return np.asarray(grey, dtype=np.float32) / np.float32(255.0)
    except (UnidentifiedImageError, OSError) as exc:
        raise PhotoIntegrityError(f"photo '{source.name}': {path} is not a readable image "
                                  f"({exc})") from None


def load_photo(name: str) -> np.ndarray:
    """A bundled grey photo in [0, 1] (float32), after checking the file's SHA-256."""
    return read_photo(bundled_photo(name))


@dataclass
class _Pyramid:
    """A photo resized once per crop scale, so each crop is an array slice."""

    name: str
    levels: list[np.ndarray]


def _pyramid(source: PhotoSource) -> _Pyramid:
    from PIL import Image

    photo = read_photo(source)
    name = source.name
    short = min(photo.shape)
    levels = []
    for frac in CROP_FRACTIONS:
        side = short * frac
        if side < STIM_SIZE:
            continue
        factor = STIM_SIZE / side
        h, w = photo.shape
        size = (max(STIM_SIZE, round(w * factor)), max(STIM_SIZE, round(h * factor)))
        img = Image.fromarray(photo, mode="F").resize(size, Image.Resampling.LANCZOS)
        levels.append(np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0))
    return _Pyramid(name, levels)


def natural_crops(
    photos: tuple[str, ...], n: int, seed: int, tag: str,
    catalogue: dict[str, PhotoSource] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """``n`` 100x100 crops (float32 in [0, 1]) and the source photo of each.

    Photo, scale (1/2 .. 1/8 of the short side, at least 100 px), position and a horizontal flip
    are drawn at random; crops with pixel std below 0.02 (blank sky, blur) are redrawn.
    ``photos`` are names in ``catalogue`` (default: the bundled photos); a photo whose short
    side is under 200 px gives no crop at these scales and is left out.
    """
    out = np.empty((n, STIM_SIZE, STIM_SIZE), dtype=np.float32)
    if n == 0:
        return out, []
    catalogue = catalogue or bundled_photos()
    pyramids = [pyr for pyr in (_pyramid(catalogue[p]) for p in photos) if pyr.levels]
    if not pyramids:
        raise PhotoIntegrityError(f"photos {list(photos)[:5]}: none is large enough for a "
                                  f"{STIM_SIZE} px crop at half its short side (>= 200 px)")
    rng = numpy_rng(seed, "natural_crops", tag)
    sources: list[str] = []
    for i in range(n):
        for _ in range(50):
            pyr = pyramids[rng.integers(len(pyramids))]
            level = pyr.levels[rng.integers(len(pyr.levels))]
            y = rng.integers(level.shape[0] - STIM_SIZE + 1)
            x = rng.integers(level.shape[1] - STIM_SIZE + 1)
            crop = level[y:y + STIM_SIZE, x:x + STIM_SIZE]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            if crop.std() >= MIN_CROP_STD:
                break
        out[i] = crop
        sources.append(pyr.name)
    return out, sources


def _radius_sampler(size: int, rmin: float, rmax: float):
    """Inverse CDF of p(r) ~ r^-3 (N + 2r)^2 on [rmin, rmax]: only leaves that can touch."""
    grid = np.geomspace(rmin, rmax, 2048)
    dens = grid ** -3.0 * (size + 2 * grid) ** 2
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return lambda u: np.interp(u, cdf, grid)


def dead_leaves(
    n: int, seed: int, tag: str, size: int = STIM_SIZE, n_leaves: int = 600,
    rmin: float = 2.0, rmax: float | None = None,
) -> np.ndarray:
    """Scale-invariant dead-leaves images (float32 in [0, 1]), one seeded generator per image.

    Leaves (discs, radius density ~ r^-3) are painted back to front into a label image; each
    leaf gets a grey level ~ Beta(2, 2).
    """
    from PIL import Image, ImageDraw

    rmax = float(rmax if rmax is not None else 2 * size)
    sample_r = _radius_sampler(size, rmin, rmax)
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        for attempt in range(100):
            # a leaf can cover the whole window: redraw (new seed) until the image varies
            rng = numpy_rng(seed, "dead_leaves", tag, i, attempt)
            r = sample_r(rng.random(n_leaves))
            cx = rng.uniform(-r, size + r)
            cy = rng.uniform(-r, size + r)
            grey = np.concatenate([[0.5], rng.beta(2.0, 2.0, n_leaves)]).astype(np.float32)
            label = Image.new("I", (size, size), 0)
            draw = ImageDraw.Draw(label)
            for k in range(n_leaves):
                draw.ellipse((cx[k] - r[k], cy[k] - r[k], cx[k] + r[k], cy[k] + r[k]),
                             fill=k + 1)
            out[i] = grey[np.asarray(label, dtype=np.int32)]
            if out[i].std() >= MIN_CROP_STD:
                break
    return out


def match_contrast(images: np.ndarray, reference: np.ndarray, seed: int, tag: str) -> np.ndarray:
    """Give each image the mean and RMS contrast of a randomly drawn reference image."""
    if images.shape[0] == 0:
        return images
    rng = numpy_rng(seed, "contrast_match", tag)
    ref_mean = reference.mean(axis=(1, 2))
    ref_std = reference.std(axis=(1, 2))
    pick = rng.integers(reference.shape[0], size=images.shape[0])
    mean = images.mean(axis=(1, 2), keepdims=True)
    std = images.std(axis=(1, 2), keepdims=True)
    std = np.where(std > 0, std, 1.0)
    scaled = (images - mean) / std * ref_std[pick, None, None] + ref_mean[pick, None, None]
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def make_stimuli(
    n: int, photos: tuple[str, ...], dead_leaves_fraction: float, seed: int, tag: str,
    catalogue: dict[str, PhotoSource] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """``n`` uint8 100x100 stimuli: natural crops mixed with contrast-matched dead leaves.

    The order is shuffled (seeded), so natural and procedural images interleave.
    """
    n_dl = round(n * dead_leaves_fraction)
    n_nat = n - n_dl
    nat, src = natural_crops(photos, max(n_nat, 1 if n_dl else 0), seed, tag, catalogue)
    dl = dead_leaves(n_dl, seed, tag)
    dl = match_contrast(dl, nat, seed, tag)
    nat = nat[:n_nat]
    src = src[:n_nat]
    images = np.concatenate([to_uint8(nat), to_uint8(dl)])
    sources = src + ["dead_leaves"] * n_dl
    order = numpy_rng(seed, "stimulus_order", tag).permutation(n)
    return images[order], [sources[i] for i in order]
