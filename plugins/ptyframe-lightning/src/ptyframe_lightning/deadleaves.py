"""Generate dead-leaves images (Baradad et al., NeurIPS 2021) and noisy/clean training pairs.

The dead-leaves model (Matheron 1968) stacks random opaque shapes until the canvas is
covered. The PINE paper (Yamada et al. 2024, sec. 4.1) trains its denoiser on two of Baradad
et al.'s variants, 500 images each, 128 x 128, 8-bit:

* ``"diverse"`` (DL-Diverse): circles, triangles and rectangles at random positions, rotated
  by a uniform angle, radii ``r`` drawn from the power law ``p(r) ~ r^-alpha`` on
  ``[r_min, r_max] * size`` (Baradad et al.: alpha = 3, r_min = 0.03, r_max = 1), each leaf one
  uniform 8-bit grey level;
* ``"textured"`` (DL-Textured): the same geometry, each leaf filled with a random texture.
  Baradad et al. fill leaves with crops of pre-generated "stat-spectrum" images; here each
  image draws a small bank of textures -- random-phase noise with a ``1/f^beta`` amplitude
  spectrum (beta uniform in [0.5, 2.5], random anisotropy) and sinusoidal gratings of random
  period and orientation -- and every leaf takes one with its own mean and contrast.

Leaves are drawn front to back (a pixel belongs to the first leaf that covers it), which is the
exact stationary dead-leaves model, until every pixel is covered; after ``max_leaves`` draws any
uncovered pixel joins a last, canvas-filling leaf (so the canvas is always covered). Each
leaf is rasterised on its bounding box only, with vectorised numpy masks; a 128 x 128 image
takes a few milliseconds.

Values are 8-bit grey levels ``0..255`` divided by 255 (float32 in [0, 1]). A training pair is
``(clean + sigma * n, clean)`` with ``n`` standard normal and ``sigma`` on the [0, 1] scale
(``15/255`` by default, as in the paper); the noisy image is not clipped.

Everything is driven by ``numpy.random.Generator`` seeds: image ``i`` of a set with seed ``s``
comes from ``default_rng([s, i])``, so any image can be regenerated on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("diverse", "textured")


@dataclass(frozen=True)
class LeafParams:
    """Geometry of the dead-leaves process (fractions of the image size)."""

    r_min: float = 0.03
    r_max: float = 1.0
    alpha: float = 3.0
    max_leaves: int = 5000
    n_textures: int = 12


def sample_radii(rng: np.random.Generator, n: int, size: int, p: LeafParams) -> np.ndarray:
    """Draw ``n`` radii in pixels from ``p(r) ~ r^-alpha`` on ``[r_min, r_max] * size``.

    Inverse-CDF sampling of the truncated power law (alpha != 1)::

        r = (r0^(1-a) + u (r1^(1-a) - r0^(1-a)))^(1/(1-a)),   u ~ U(0, 1)
    """
    r0, r1, a = p.r_min * size, p.r_max * size, p.alpha
    u = rng.random(n)
    if abs(a - 1.0) < 1e-9:
        return r0 * (r1 / r0) ** u
    e = 1.0 - a
    return (r0**e + u * (r1**e - r0**e)) ** (1.0 / e)


def _leaf_mask(
    shape: int, cy: float, cx: float, r: float, theta: float, extra: np.ndarray, size: int
) -> tuple[slice, slice, np.ndarray] | None:
    """Rasterise one leaf on its bounding box; return (rows, cols, bool mask) or None."""
    y0, y1 = max(int(np.floor(cy - r)), 0), min(int(np.ceil(cy + r)) + 1, size)
    x0, x1 = max(int(np.floor(cx - r)), 0), min(int(np.ceil(cx + r)) + 1, size)
    if y0 >= y1 or x0 >= x1:
        return None
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
    if shape == 0:  # circle
        mask = yy * yy + xx * xx <= r * r
    elif shape == 1:  # rectangle with half-sides r cos(t), r sin(t), rotated by theta
        c, s = np.cos(theta), np.sin(theta)
        u = c * xx + s * yy
        v = -s * xx + c * yy
        t = extra[0]
        mask = (np.abs(u) <= r * np.cos(t)) & (np.abs(v) <= r * np.sin(t))
    else:  # triangle: three sorted angles on the circle of radius r (its rotation is random)
        ang = np.sort(extra) + theta
        py, px = r * np.sin(ang), r * np.cos(ang)
        inside = np.ones((y1 - y0, x1 - x0), dtype=bool)
        for k in range(3):
            j = (k + 1) % 3
            # counter-clockwise vertices: the interior is left of every edge
            cross = (px[j] - px[k]) * (yy - py[k]) - (py[j] - py[k]) * (xx - px[k])
            inside &= cross >= 0
        mask = inside
    return slice(y0, y1), slice(x0, x1), mask


def leaf_labels(
    rng: np.random.Generator, size: int = 128, params: LeafParams | None = None
) -> np.ndarray:
    """Return the leaf index of every pixel, ``int32 [size, size]``, drawn front to back."""
    p = params or LeafParams()
    labels = np.full((size, size), -1, dtype=np.int32)
    batch = 256
    n_drawn = 0
    uncovered = size * size
    while uncovered > 0 and n_drawn < p.max_leaves:
        radii = sample_radii(rng, batch, size, p)
        centres = rng.random((batch, 2)) * size
        shapes = rng.integers(0, 3, batch)
        thetas = rng.random(batch) * 2 * np.pi
        extras = rng.random((batch, 3)) * 2 * np.pi
        extras[:, 0] = 0.05 + rng.random(batch) * (0.5 * np.pi - 0.1)
        for k in range(batch):
            if n_drawn >= p.max_leaves or uncovered == 0:
                break
            hit = _leaf_mask(
                int(shapes[k]),
                centres[k, 0],
                centres[k, 1],
                max(radii[k], 1.0),
                thetas[k],
                extras[k],
                size,
            )
            if hit is not None:
                rows, cols, mask = hit
                window = labels[rows, cols]
                new = mask & (window < 0)
                count = int(new.sum())
                if count:
                    window[new] = n_drawn
                    uncovered -= count
            n_drawn += 1
    labels[labels < 0] = n_drawn  # a last leaf fills whatever is left
    return labels


def texture_bank(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Return ``n`` zero-mean, unit-peak textures ``float32 [n, size, size]``.

    Half are random-phase noise with amplitude spectrum ``|f|^-beta`` stretched along a random
    direction; half are sinusoidal gratings (period 3..size/3 px, random orientation and phase).
    """
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    out = np.empty((n, size, size), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(n):
        if i % 2 == 0:
            beta = rng.uniform(0.5, 2.5)
            phi = rng.uniform(0, np.pi)
            stretch = rng.uniform(1.0, 4.0)
            u = np.cos(phi) * fx + np.sin(phi) * fy
            v = -np.sin(phi) * fx + np.cos(phi) * fy
            f = np.sqrt(u * u * stretch + v * v / stretch) + 1.0 / size
            spec = f**-beta * np.exp(2j * np.pi * rng.random(f.shape))
            spec[0, 0] = 0.0
            t = np.fft.irfft2(spec, s=(size, size))
        else:
            period = rng.uniform(3.0, size / 3.0)
            phi = rng.uniform(0, np.pi)
            t = np.sin(
                2 * np.pi * (np.cos(phi) * xx + np.sin(phi) * yy) / period + rng.uniform(0, 6.3)
            )
        t = t - t.mean()
        out[i] = t / max(float(np.abs(t).max()), 1e-12)
    return out


def dead_leaves(
    rng: np.random.Generator,
    kind: str = "diverse",
    size: int = 128,
    params: LeafParams | None = None,
) -> np.ndarray:
    """Return one dead-leaves image, ``float32 [size, size]`` of 8-bit levels / 255 in [0, 1]."""
    if kind not in KINDS:
        raise ValueError(f"unknown dead-leaves kind {kind!r}; choose one of {', '.join(KINDS)}")
    p = params or LeafParams()
    labels = leaf_labels(rng, size, p)
    n_leaves = int(labels.max()) + 1
    grey = rng.integers(0, 256, n_leaves).astype(np.float32)
    if kind == "diverse":
        img = grey[labels]
    else:
        bank = texture_bank(rng, p.n_textures, size)
        tex = rng.integers(0, p.n_textures, n_leaves)
        contrast = rng.uniform(10.0, 128.0, n_leaves).astype(np.float32)
        yy, xx = np.indices((size, size))
        img = grey[labels] + contrast[labels] * bank[tex[labels], yy, xx]
    return (np.clip(np.rint(img), 0, 255) / 255.0).astype(np.float32)


def image_rng(seed: int, index: int) -> np.random.Generator:
    """Return the generator of image ``index`` in the set with ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


def make_images(
    n: int, kinds: tuple[str, ...] | list[str], size: int = 128, seed: int = 0, start: int = 0
) -> np.ndarray:
    """Return ``n`` clean images ``float32 [n, size, size]``, kinds cycled over ``kinds``."""
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        idx = start + i
        out[i] = dead_leaves(image_rng(seed, idx), kinds[idx % len(kinds)], size)
    return out


def add_noise(
    clean: np.ndarray, sigma: float | tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Return ``clean + sigma * n``; a ``(lo, hi)`` sigma draws one uniform sigma per image.

    ``clean`` is ``[..., H, W]``; sigma is on the [0, 1] scale (``15/255`` for the paper).
    """
    if isinstance(sigma, tuple | list):
        lo, hi = float(sigma[0]), float(sigma[1])
        lead = clean.shape[:-2]
        s = rng.uniform(lo, hi, lead + (1, 1)).astype(np.float32)
    else:
        s = np.float32(sigma)
    return (clean + s * rng.standard_normal(clean.shape, dtype=np.float32)).astype(np.float32)
