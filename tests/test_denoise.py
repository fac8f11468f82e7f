"""Tests for ptyframe.denoise: exact conv norms, RealSN, the shipped DnCNN, complex application."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ptyframe.denoise.apply import ComplexDenoiser, apply_tiled, minmax_forward, minmax_inverse
from ptyframe.denoise.dncnn import (
    DnCNN,
    DncnnArch,
    denoiser_lipschitz_bound,
    layer_norm_bounds,
    lipschitz_bound,
)
from ptyframe.denoise.plugin import DncnnConfig, build_dncnn, ptyframe_register
from ptyframe.denoise.realsn import (
    RealSNConv2d,
    circular_operator_norm,
    conv_adjoint,
    conv_apply,
    exact_normalise,
    operator_norm_bound,
    power_iteration_norm,
)
from ptyframe.denoise.weights import (
    default_weights_path,
    load_denoiser,
    model_from_checkpoint,
    save_weights,
)
from ptyframe.errors import ConfigError, DataValidationError
from ptyframe.registry import BuildContext, Registry

# torch.func's jvp triggers torch's own torch.jit.script deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")


def _weight(cout: int, cin: int, k: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64)


def _dense(weight: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Return the matrix of the convolution on n x n images, [C_out n^2, C_in n^2]."""
    cin = weight.shape[1]
    eye = torch.eye(cin * n * n, dtype=weight.dtype).reshape(-1, cin, n, n)
    return conv_apply(eye, weight, mode).reshape(cin * n * n, -1).T


def _blocks(n: int, seed: int) -> np.ndarray:
    """A piecewise-constant 'real' image in [0, 1]: random rectangles on a grey background."""
    rng = np.random.default_rng(seed)
    img = np.full((n, n), 0.5)
    for _ in range(12):
        y, x = rng.integers(0, n, 2)
        h, w = rng.integers(3, n // 2, 2)
        img[y : y + h, x : x + w] = rng.integers(0, 256) / 255
    return img


# --------------------------------------------------------------------------- operator norms
def test_fft_norm_equals_dense_spectral_norm_circular() -> None:
    w = _weight(3, 2, seed=1)
    for n in (5, 6):
        dense = torch.linalg.matrix_norm(_dense(w, n, "circular"), ord=2).item()
        assert circular_operator_norm(w, n) == pytest.approx(dense, rel=1e-10)


def test_bound_dominates_zero_padded_dense_norm_and_is_tight() -> None:
    w = _weight(3, 2, seed=2)
    dense_zero = torch.linalg.matrix_norm(_dense(w, 12, "zeros"), ord=2).item()
    bound = operator_norm_bound(w, grid=64)
    assert dense_zero <= bound
    assert dense_zero >= 0.85 * bound  # 12 x 12 is already close to the infinite-lattice norm


def test_adjoint_is_the_transpose() -> None:
    w = _weight(4, 3, seed=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 9, 7, generator=g, dtype=torch.float64)
    y = torch.randn(1, 4, 9, 7, generator=g, dtype=torch.float64)
    for mode in ("zeros", "circular"):
        lhs = (conv_apply(x, w, mode) * y).sum()
        rhs = (x * conv_adjoint(y, w, mode)).sum()
        assert lhs.item() == pytest.approx(rhs.item(), rel=1e-12)


def test_fft_norm_matches_power_iteration() -> None:
    w = _weight(6, 4, seed=4)
    fft = circular_operator_norm(w, 16)
    power = power_iteration_norm(w, 16, n_iter=300, padding_mode="circular")
    assert power == pytest.approx(fft, rel=1e-3)
    zero = power_iteration_norm(w, 32, n_iter=100, padding_mode="zeros")
    assert zero <= operator_norm_bound(w, 128) * (1 + 1e-9)
    assert zero >= 0.97 * operator_norm_bound(w, 128)


def test_bound_is_rigorous_between_grid_points() -> None:
    # a high-pass [1, -2, 1] row kernel peaks at w = pi, which an odd grid misses
    w = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    w[0, 0, 1] = torch.tensor([1.0, -2.0, 1.0])
    assert circular_operator_norm(w, 5) < 4.0 - 0.3
    assert operator_norm_bound(w, 5) >= 4.0
    for seed in range(3):
        wr = _weight(5, 3, seed=10 + seed)
        fine = circular_operator_norm(wr, 400)
        coarse = operator_norm_bound(wr, 12)
        assert fine <= coarse <= fine / math.cos(math.pi / 12) ** 2 + 1e-12


def test_realsn_layer_estimate_and_exact_normalisation() -> None:
    torch.manual_seed(0)
    conv = RealSNConv2d(3, 5, power_px=32)
    conv.train()
    for _ in range(20):
        conv(torch.randn(2, 3, 16, 16))
    conv.eval()
    w_eff = conv.normalised_weight().detach().double()
    # the training normalisation bounds the exact norm: the layer is <= 1 (+ tiny slack)
    assert operator_norm_bound(w_eff, 128) <= 1.0 + 1e-3
    assert operator_norm_bound(w_eff, 128) >= 0.99
    plain = exact_normalise(conv)
    assert isinstance(plain, torch.nn.Conv2d) and not isinstance(plain, RealSNConv2d)
    assert operator_norm_bound(plain.weight.double(), 128) <= 1.0 + 1e-6
    scaled = torch.nn.Conv2d(3, 5, 3, padding=1)
    with torch.no_grad():
        scaled.weight.mul_(50.0)
    assert operator_norm_bound(exact_normalise(scaled).weight.double(), 128) == pytest.approx(
        1.0, abs=1e-6
    )


# --------------------------------------------------------------------------- shipped network
@pytest.fixture(scope="module")
def shipped() -> DnCNN:
    return load_denoiser(None, "cpu")


def _jacobian_norm(f, x: torch.Tensor, n_iter: int = 60) -> float:
    """Return ||J_f(x)|| by power iteration on J^T J with jvp / vjp (autograd)."""
    g = torch.Generator().manual_seed(0)
    v = torch.randn(x.shape, generator=g)
    v = v / v.norm()
    sigma = 0.0
    _, vjp = torch.func.vjp(f, x)
    for _ in range(n_iter):
        _, jv = torch.func.jvp(f, (x,), (v,))
        (jtjv,) = vjp(jv)
        sigma = jv.norm().item()
        v = jtjv / jtjv.norm()
    return sigma


def test_shipped_weights_exist_and_are_small() -> None:
    path = default_weights_path()
    assert path.exists() and path.stat().st_size < 2_000_000
    assert path.with_name("dncnn_realsn_default.json").exists()


def test_shipped_network_lipschitz_bound(shipped: DnCNN) -> None:
    norms = layer_norm_bounds(shipped)
    assert len(norms) == shipped.arch.depth
    assert all(n <= 1.0 + 1e-4 for n in norms)
    bound = lipschitz_bound(shipped)
    assert bound <= 1.0 + 1e-3
    assert bound == pytest.approx(math.prod(norms))
    assert bound > 0.9  # RealSN layers sit at norm 1, they are not shrunk away


def test_shipped_network_jacobian_below_bound(shipped: DnCNN) -> None:
    bound = lipschitz_bound(shipped)
    rng = np.random.default_rng(5)
    for seed in (0, 1):
        clean = _blocks(40, seed)
        noisy = clean + 15 / 255 * rng.standard_normal(clean.shape)
        x = torch.tensor(noisy, dtype=torch.float32)[None, None]
        jn = _jacobian_norm(shipped.body, x)
        assert 0.2 < jn <= bound + 1e-4
        jd = _jacobian_norm(shipped, x)
        assert jd <= denoiser_lipschitz_bound(shipped) + 1e-4
        # empirical difference quotient of the network body
        y = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            q = (shipped.body(x) - shipped.body(y)).norm() / (x - y).norm()
        assert q.item() <= bound + 1e-4


def test_shipped_denoiser_denoises(shipped: DnCNN) -> None:
    clean = _blocks(96, 7)
    noisy = clean + 15 / 255 * np.random.default_rng(1).standard_normal(clean.shape)
    with torch.no_grad():
        out = shipped(torch.tensor(noisy, dtype=torch.float32)[None, None])[0, 0].numpy()
    psnr_in = -10 * np.log10(np.mean((noisy - clean) ** 2))
    psnr_out = -10 * np.log10(np.mean((out - clean) ** 2))
    assert psnr_out > psnr_in + 3.0


# --------------------------------------------------------------------------- complex application
def _small_model(seed: int = 0) -> DnCNN:
    torch.manual_seed(seed)
    return DnCNN(DncnnArch(depth=4, channels=6)).exported()


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_complex_denoiser_shape_dtype_and_parts() -> None:
    model = _small_model()
    den = ComplexDenoiser(model, normalisation="minmax", tile_px=512)
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.complex64, torch.complex128):
        obj = torch.randn(2, 3, 24, 30, generator=g, dtype=dtype)
        out = den(obj)
        assert out.shape == obj.shape and out.dtype == dtype
        # eq. 22: D acts on Re and Im separately, each min-max scaled over its own object
        re = obj.real[1, 2].double()
        lo, hi = re.min(), re.max()
        with torch.no_grad():
            ref = model(((re - lo) / (hi - lo)).float()[None, None])[0, 0].double()
        expect = lo + (hi - lo) * ref
        tol = 1e-5 * float(hi - lo)
        assert torch.allclose(out.real[1, 2].double(), expect, atol=tol)


def test_tiled_equals_untiled() -> None:
    model = _small_model(1)
    g = torch.Generator().manual_seed(1)
    obj = torch.randn(70, 53, generator=g, dtype=torch.complex64)
    whole = ComplexDenoiser(model, tile_px=4096)(obj)
    radius = model.receptive_radius
    tiled = ComplexDenoiser(model, tile_px=16, overlap_px=radius)(obj)
    assert torch.allclose(tiled, whole, atol=1e-5)
    x = torch.rand(2, 1, 45, 38, generator=g)
    with torch.no_grad():
        assert torch.allclose(apply_tiled(model, x, 10, radius), model(x), atol=1e-5)
        seams = apply_tiled(model, x, 10, 0)
    assert not torch.allclose(seams, model(x), atol=1e-5)  # too small a halo shows seams


def test_tiled_equals_untiled_with_pixel_unshuffle() -> None:
    torch.manual_seed(2)
    model = DnCNN(DncnnArch(depth=3, channels=5, downsample=2)).exported()
    x = torch.rand(1, 1, 41, 37)
    with torch.no_grad():
        whole = model(x)
        assert whole.shape == x.shape
        tiled = apply_tiled(model, x, 11, model.receptive_radius)  # rounded up to even sizes
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_averaged_structure_makes_d_nonexpansive() -> None:
    torch.manual_seed(3)
    model = DnCNN(DncnnArch(depth=4, channels=6, structure="averaged"), realsn=True).exported()
    assert denoiser_lipschitz_bound(model) <= 1.0 + 1e-6
    x = torch.rand(1, 1, 24, 24)
    assert _jacobian_norm(model, x) <= 1.0 + 1e-5
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (model(x) - model(y)).norm() <= (x - y).norm() * (1 + 1e-6)
        assert torch.allclose(model.residual(x), x - model(x), atol=1e-6)


def test_minmax_round_trip_and_constant_parts() -> None:
    g = torch.Generator().manual_seed(2)
    p = torch.randn(3, 17, 19, generator=g, dtype=torch.float64) * 4 + 1
    q, lo, scale, const = minmax_forward(p)
    assert float(q.min()) == 0.0 and float(q.max()) == pytest.approx(1.0, abs=1e-15)
    assert not const.any()
    assert torch.allclose(minmax_inverse(q, lo, scale), p, atol=1e-13)
    den = ComplexDenoiser(_Identity())
    obj = torch.randn(17, 19, generator=g, dtype=torch.complex128)
    assert torch.allclose(den(obj), obj, atol=1e-6)
    flat = torch.full((8, 8), 0.7 + 0.0j, dtype=torch.complex64)  # all-ones-like start object
    assert torch.equal(ComplexDenoiser(_small_model())(flat), flat)


def test_complex_denoiser_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        ComplexDenoiser(_Identity(), normalisation="zscore")
    with pytest.raises(ConfigError):
        DncnnConfig(tile_px=0)
    with pytest.raises(ConfigError):
        DncnnConfig(normalisation="polar")


# --------------------------------------------------------------------------- weights files
def test_save_load_round_trip(tmp_path) -> None:
    model = _small_model(3)
    path = save_weights(model, tmp_path / "w.pt", note="test")
    loaded = load_denoiser(str(path))
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    assert loaded.arch == model.arch


def test_lightning_style_checkpoint_is_exactly_normalised() -> None:
    torch.manual_seed(4)
    arch = DncnnArch(depth=3, channels=4)
    net = DnCNN(arch, realsn=True)
    with torch.no_grad():
        for conv in net.layers:
            conv.weight.mul_(7.0)
    sd = {f"model.{k}": v for k, v in net.state_dict().items()}
    blob = {"state_dict": sd, "hyper_parameters": {"arch": arch.to_dict()}, "epoch": 1}
    model = model_from_checkpoint(blob)
    assert not model.realsn
    assert lipschitz_bound(model) <= 1.0 + 1e-5


def test_bad_checkpoints_raise_clear_errors(tmp_path) -> None:
    with pytest.raises(DataValidationError, match="does not exist"):
        load_denoiser(str(tmp_path / "nope.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a torch file at all")
    with pytest.raises(DataValidationError, match="not a PyTorch file"):
        load_denoiser(str(junk))
    keys = tmp_path / "keys.pt"
    torch.save({"conv.weight": torch.zeros(3)}, keys)
    with pytest.raises(DataValidationError, match="no DnCNN layer"):
        load_denoiser(str(keys))
    sd = _small_model().state_dict()
    sd["layers.1.weight"] = torch.zeros(6, 5, 3, 3)
    shapes = tmp_path / "shapes.pt"
    torch.save(sd, shapes)
    with pytest.raises(DataValidationError, match="wrong shapes"):
        load_denoiser(str(shapes))
    obj = tmp_path / "object.pt"
    torch.save({"state_dict": {}, "x": DncnnArch()}, obj)
    with pytest.raises(DataValidationError, match="weights_only"):
        load_denoiser(str(obj))


# --------------------------------------------------------------------------- registry
def test_registered_and_built_from_config() -> None:
    reg = Registry()
    ptyframe_register(reg.scoped("test"))
    comp = reg.get("denoiser", "dncnn")
    assert comp.config_cls is DncnnConfig
    den = reg.build("denoiser", {"name": "dncnn", "tile_px": 64}, BuildContext(reg))
    assert isinstance(den, ComplexDenoiser) and den.tile_px == 64
    assert den.device.type == "cpu"
    out = build_dncnn(DncnnConfig(), BuildContext(reg))(torch.ones(8, 8, dtype=torch.complex64))
    assert out.shape == (8, 8)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = _small_model(5)
    obj = torch.randn(2, 300, 260, dtype=torch.complex64)
    cpu = ComplexDenoiser(model, tile_px=128)(obj)
    gpu = ComplexDenoiser(_small_model(5), tile_px=128, device="cuda")(obj.cuda())
    assert gpu.device.type == "cuda" and gpu.dtype == obj.dtype
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)
