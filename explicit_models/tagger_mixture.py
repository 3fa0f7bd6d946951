"""The Tagger mixture (SPEC §2.3; RLadder slides "Perceptual grouping with RLadder"; Tagger paper).

Explicit instance (reconstructed, ours; every value configurable): pixels ``i = 1..N``,
groups ``k = 1..K``, appearance latents ``h_k ~ N(0, I_d)``, group means
``μ_k = B h_k + β_k`` (``B`` an ``N × d`` basis, by default low-frequency 2-D sinusoids:
"textures"), assignments ``z_i ~ Cat(ρ)`` and

* ``likelihood="gaussian"``: ``x_i | z_i=k, h ~ N(μ_ik, σ_k²)``, ``x̃ = x + N(0, σ² I)``, so that
  ``x̃_i | z_i=k, h ~ N(μ_ik, λ_k)`` with ``λ_k = σ_k² + σ²`` (``x`` integrated out);
* ``likelihood="bernoulli"``: ``x_i | z_i=k, h ~ Bern(sig(μ_ik))``, ``x̃ = x XOR Bern(β)``, so that
  ``p(x̃_i = 1 | z_i=k, h) = ξ_ik = sig(μ_ik)(1 − 2β) + β``.

Given ``h`` the likelihood factorises over pixels, so ``z`` sums out pixel by pixel:
``log p(x̃ | h) = Σ_i log Σ_k ρ_k p(x̃_i | z_i=k, h)``. The class holds validated parameters
and its generative side (sampling, the Pyro model, likelihoods given ``h``); inference
(VB, TAG inputs, grouping cost, gold standards) comes from :class:`TaggerInference`
(:mod:`tagger_inference`), which delegates the mathematics to :mod:`tagger_vb`,
:mod:`tagger_binary` (Jaakkola–Jordan VB of the binary variant) and :mod:`tagger_gold`
(NUTS gold standard, exact enumeration).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex

from . import _validation as V
from . import tagger_binary
from . import tagger_vb as tvb
from .tagger_inference import TaggerInference, TaggerVBState, TagInputs  # noqa: F401 (re-exported)

LIKELIHOODS = ("gaussian", "bernoulli")


@dataclass
class TaggerSample:
    """``n`` draws of the Tagger mixture (SPEC §2.3): ``x`` ``(n, N)`` clean input, ``x_noisy``
    ``(n, N)`` corrupted input, ``z`` ``(n, N)`` long group of each pixel in ``[0, K)``, ``h``
    ``(n, K, d)`` appearance latents, ``mu`` ``(n, K, N)`` group means ``B h_k + β_k``
    (binary: logits)."""

    x: torch.Tensor
    x_noisy: torch.Tensor
    z: torch.Tensor
    h: torch.Tensor
    mu: torch.Tensor


def sinusoid_frequencies(num_freqs: int) -> list:
    """The ``num_freqs`` lowest integer 2-D frequencies ``(f_r, f_c)`` of the half plane
    ``f_r > 0 or (f_r = 0 and f_c > 0)`` (one of each ``±f`` pair; the constant excluded),
    ordered by ``f_r² + f_c²``, then ``f_r``, then ``f_c`` (ours)."""
    n = int(num_freqs)
    F = int(math.isqrt(max(n, 1))) + 2
    pairs = [(fr, fc) for fr in range(0, F + 1) for fc in range(-F, F + 1) if fr > 0 or fc > 0]
    pairs.sort(key=lambda f: (f[0] ** 2 + f[1] ** 2, f[0], f[1]))
    return pairs[:n]


def sinusoid_basis(height: int, width: int, num_freqs: int, amplitude: float,
                   dtype=torch.float64, device=None) -> torch.Tensor:
    """Texture basis ``(H·W, 2·num_freqs)`` (SPEC §2.3 default; ours): for each frequency
    ``f`` of :func:`sinusoid_frequencies` the pair ``cos θ, sin θ`` with
    ``θ = 2π (f_r r / H + f_c c / W)`` at pixel ``(r, c)`` (row-major), scaled by
    ``amplitude / sqrt(num_freqs)`` so that every pixel's prior variance
    ``Σ_j B_ij² = amplitude²`` exactly (``cos² + sin² = 1``). No constant column: the
    group's mean level is its offset ``β_k``. Below the Nyquist limit (``|f_r| < H/2``,
    ``|f_c| < W/2``) the columns are orthogonal; on tiny images a frequency at or above it
    gives a zero or aliased column (harmless: that coordinate of ``h`` stays at its prior)."""
    r = torch.arange(height, dtype=dtype, device=device).repeat_interleave(width)
    c = torch.arange(width, dtype=dtype, device=device).repeat(height)
    cols = []
    for fr, fc in sinusoid_frequencies(num_freqs):
        theta = 2.0 * math.pi * (fr * r / height + fc * c / width)
        cols += [torch.cos(theta), torch.sin(theta)]
    return torch.stack(cols, -1) * (float(amplitude) / math.sqrt(num_freqs))


def _image_shape(value, pixels: int) -> Optional[tuple]:
    """``value`` as an ``(H, W)`` tuple of positive ints with ``H·W = pixels``, or None."""
    if value is None:
        return None
    try:
        h, w = value
        ok = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in (h, w)) and h * w == pixels
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"image_shape must be (H, W), two positive ints with H·W = N = {pixels} "
                         f"(the basis rows), got {value!r}")
    return (int(h), int(w))


class TaggerMixture(TaggerInference):
    """Tagger's perceptual-grouping mixture with texture latents (SPEC §2.3).

    ``image_shape`` is ``(H, W)`` with ``H·W = N`` (pixels row-major; :meth:`textures` sets
    it) or None.

    ``basis`` ``B`` ``(N, d)``; ``offsets`` ``β`` ``(K, N)`` or ``(N,)`` (shared by all
    groups); ``group_stds`` ``σ_k`` ``(K,)``; ``noise_std`` ``σ`` (positive scalar);
    ``mix_probs`` ``ρ`` ``(K,)`` (default uniform); ``likelihood`` ``"gaussian"`` or
    ``"bernoulli"``; ``flip_prob`` ``β ∈ [0, 0.5)`` (bernoulli only, required there).
    For ``"bernoulli"`` ``group_stds`` and ``noise_std`` play no part and may be None
    (``K`` then comes from ``offsets`` ``(K, N)`` or ``mix_probs``). Parameters are stored
    as tensors of ``dtype`` (float64 by default) on ``device``; invalid ones raise
    ``ValueError`` naming the parameter.
    """

    def __init__(self, basis, offsets, group_stds, noise_std, mix_probs=None, likelihood="gaussian",
                 flip_prob=None, *, image_shape=None, dtype: torch.dtype = torch.float64, device=None):
        self.dtype, self.device = dtype, device
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.likelihood = likelihood
        gaussian = likelihood == "gaussian"
        self.basis = V.as_tensor(basis, "basis", dtype, device)
        V.check_ndim(self.basis, 2, "basis", "(N, d)")
        V.check_finite(self.basis, "basis")
        if self.basis.shape[0] < 1 or self.basis.shape[1] < 1:
            raise ValueError(f"basis must have shape (N, d) with N, d >= 1, got {V._shape(self.basis)}")
        N = int(self.basis.shape[0])
        self.image_shape: Optional[tuple] = _image_shape(image_shape, N)
        # ---- number of groups: from group_stds, else offsets (K, N), else mix_probs
        self.group_stds = V.optional_tensor(group_stds, "group_stds", dtype, device)
        if gaussian and self.group_stds is None:
            raise ValueError("group_stds is required for likelihood='gaussian'")
        mix = V.optional_tensor(mix_probs, "mix_probs", dtype, device)
        offsets_t = V.as_tensor(offsets, "offsets", dtype, device)
        if self.group_stds is not None:
            V.check_ndim(self.group_stds, 1, "group_stds", "(K,)")
            V.check_positive(self.group_stds, "group_stds")
            K = int(self.group_stds.shape[0])
        elif offsets_t.dim() == 2:
            K = int(offsets_t.shape[0])
        elif mix is not None and mix.dim() == 1:
            K = int(mix.shape[0])
        else:
            raise ValueError("group_stds: the number of groups K is unknown; give group_stds (K,), "
                             "offsets (K, N) or mix_probs (K,)")
        if K < 1:
            raise ValueError("group_stds: need at least one group")
        # ---- offsets
        V.check_finite(offsets_t, "offsets")
        if offsets_t.dim() == 1:
            if offsets_t.shape[0] != N:
                raise ValueError(f"offsets has shape {V._shape(offsets_t)} but basis has N = {N} rows")
            offsets_t = offsets_t.expand(K, N).clone()
        elif offsets_t.dim() == 2:
            if tuple(offsets_t.shape) != (K, N):
                raise ValueError(f"offsets has shape {V._shape(offsets_t)} but expected (K, N) = ({K}, {N})")
        else:
            raise ValueError(f"offsets must have shape (K, N) or (N,), got {V._shape(offsets_t)}")
        self.offsets = offsets_t
        # ---- mixing proportions
        if mix is None:
            mix = torch.full((K,), 1.0 / K, dtype=dtype, device=device)
        V.check_ndim(mix, 1, "mix_probs", "(K,)")
        if mix.shape[0] != K:
            raise ValueError(f"mix_probs has {mix.shape[0]} entries but there are K = {K} groups")
        V.check_probs(mix, "mix_probs")
        self.mix_probs = mix
        # ---- noise
        if gaussian:
            self.noise_std = V.check_scalar(noise_std, "noise_std", dtype, device)
            if flip_prob is not None:
                raise ValueError("flip_prob applies only to likelihood='bernoulli'")
            self.flip_prob = None
        else:
            self.noise_std = None if noise_std is None else V.check_scalar(noise_std, "noise_std", dtype, device)
            if flip_prob is None:
                raise ValueError("flip_prob is required for likelihood='bernoulli' (β in [0, 0.5))")
            fp = V.as_tensor(flip_prob, "flip_prob", dtype, device)
            if fp.numel() != 1:
                raise ValueError(f"flip_prob must be a scalar, got shape {V._shape(fp)}")
            fp = fp.reshape(())
            if not bool(torch.isfinite(fp)) or not (0.0 <= float(fp) < 0.5):
                raise ValueError(f"flip_prob must lie in [0, 0.5), got {float(fp)}")
            self.flip_prob = fp

    # ------------------------------------------------------------------ constructors
    @classmethod
    def textures(cls, height: int, width: int, groups: int, num_freqs: int = 4, group_std: float = 0.1,
                 noise_std: float = 0.1, amplitude: float = 1.0, offset_spread: float = 0.0,
                 likelihood: str = "gaussian", flip_prob=None, mix_probs=None,
                 dtype: torch.dtype = torch.float64, device=None) -> "TaggerMixture":
        """A texture model on ``height × width`` images with ``groups`` groups (SPEC §2.3; all
        values ours). Basis: :func:`sinusoid_basis` (``d = 2·num_freqs``; the default 4
        frequencies ``(0,1), (1,0), (1,−1), (1,1)`` give ``d = 8``, 6 add ``(0,2), (2,0)``:
        ``d = 12``); every pixel's group mean has prior std ``amplitude``. Offsets: constant
        per group, evenly spaced in ``[−offset_spread, offset_spread]`` (all 0 by default:
        exchangeable groups). ``group_std`` ``σ_k`` for every group, ``noise_std`` ``σ``
        (gaussian only; ignored for ``"bernoulli"``, which needs ``flip_prob``)."""
        K, N = int(groups), int(height) * int(width)
        if K < 1 or N < 1:
            raise ValueError(f"groups, height and width must be positive, got {groups}, {height}, {width}")
        if int(num_freqs) < 1:
            raise ValueError(f"num_freqs must be positive, got {num_freqs}")
        basis = sinusoid_basis(int(height), int(width), int(num_freqs), amplitude, dtype, device)
        levels = (torch.linspace(-1.0, 1.0, K, dtype=dtype, device=device) if K > 1
                  else torch.zeros(1, dtype=dtype, device=device))
        offsets = (float(offset_spread) * levels).unsqueeze(-1).expand(K, N).clone()
        gaussian = likelihood == "gaussian"
        stds = torch.full((K,), float(group_std), dtype=dtype, device=device)
        return cls(basis, offsets, stds if gaussian else None, noise_std if gaussian else None,
                   mix_probs=mix_probs, likelihood=likelihood, flip_prob=flip_prob,
                   image_shape=(int(height), int(width)), dtype=dtype, device=device)

    def parameters(self) -> dict:
        """The constructor's keyword arguments that rebuild this model (tensors, the
        likelihood's name, ``image_shape``; the unused optional ones left out, the required
        ``group_stds`` and ``noise_std`` None for ``"bernoulli"``):
        ``TaggerMixture(**m.parameters())`` equals ``m`` (``explicit_models.model_files``
        writes them to a parameter file)."""
        out = dict(basis=self.basis, offsets=self.offsets, group_stds=self.group_stds, noise_std=self.noise_std,
                   mix_probs=self.mix_probs, likelihood=self.likelihood, flip_prob=self.flip_prob,
                   image_shape=None if self.image_shape is None else list(self.image_shape))
        return {k: v for k, v in out.items() if v is not None or k in ("group_stds", "noise_std")}

    # ------------------------------------------------------------------ properties
    @property
    def num_groups(self) -> int:
        return int(self.offsets.shape[0])

    @property
    def num_pixels(self) -> int:
        return int(self.basis.shape[0])

    @property
    def basis_dim(self) -> int:
        return int(self.basis.shape[1])

    @property
    def group_vars(self) -> Optional[torch.Tensor]:
        """``σ_k²`` ``(K,)`` (None for ``"bernoulli"`` without ``group_stds``)."""
        return None if self.group_stds is None else self.group_stds ** 2

    @property
    def lam(self) -> Optional[torch.Tensor]:
        """``λ_k = σ_k² + σ²`` ``(K,)``, the variance of ``x̃_i`` given ``z_i = k`` and ``h``
        (gaussian; None for ``"bernoulli"``)."""
        if self.likelihood != "gaussian":
            return None
        return self.group_stds ** 2 + self.noise_std ** 2

    @property
    def log_mix_probs(self) -> torch.Tensor:
        return torch.log(self.mix_probs)

    def __repr__(self) -> str:
        noise = (f"noise_std={float(self.noise_std):.4g}" if self.likelihood == "gaussian"
                 else f"flip_prob={float(self.flip_prob):.4g}")
        return (f"TaggerMixture(K={self.num_groups}, N={self.num_pixels}, d={self.basis_dim}, "
                f"likelihood={self.likelihood!r}, {noise})")

    # ------------------------------------------------------------------ validation of inputs
    def check_x_noisy(self, x_noisy, name: str = "x_noisy") -> torch.Tensor:
        """``x_noisy`` as a ``(batch, N)`` tensor of the model's dtype, or ``ValueError``
        (bernoulli: entries must be 0 or 1)."""
        x = V.check_x_noisy(x_noisy, self.num_pixels, self.dtype, self.device, name)
        if self.likelihood == "bernoulli" and not bool(((x == 0) | (x == 1)).all()):
            raise ValueError(f"{name} must be binary (0/1) for likelihood='bernoulli'")
        return x

    def _check_groups(self, t, batch: int, name: str) -> torch.Tensor:
        t = t.to(dtype=self.dtype, device=self.device) if isinstance(t, torch.Tensor) else \
            V.as_tensor(t, name, self.dtype, self.device)
        K, N = self.num_groups, self.num_pixels
        if t.dim() == 2 and tuple(t.shape) == (K, N):
            t = t.expand(batch, K, N)
        if tuple(t.shape) != (batch, K, N):
            raise ValueError(f"{name}: expected shape ({batch}, {K}, {N}) = (batch, K, N), got {V._shape(t)}")
        if bool(torch.isnan(t).any()):
            raise ValueError(f"{name} contains NaN values")
        return t

    def _check_h(self, h) -> torch.Tensor:
        h = h.to(dtype=self.dtype, device=self.device) if isinstance(h, torch.Tensor) else \
            V.as_tensor(h, "h", self.dtype, self.device)
        if h.dim() < 2 or tuple(h.shape[-2:]) != (self.num_groups, self.basis_dim):
            raise ValueError(f"h: expected shape (..., K, d) = (..., {self.num_groups}, {self.basis_dim}), "
                             f"got {V._shape(h)}")
        return h

    # ------------------------------------------------------------------ likelihood given h
    def group_means(self, h) -> torch.Tensor:
        """``μ_k = B h_k + β_k``: ``h`` ``(..., K, d)`` → ``(..., K, N)`` (binary: logits)."""
        return self._check_h(h) @ self.basis.T + self.offsets

    def log_likelihood_terms(self, x_noisy, h) -> torch.Tensor:
        """``log p(x̃_i | z_i = k, h)`` ``(..., B, K, N)`` for ``h`` ``(..., B, K, d)`` (SPEC §2.3):
        gaussian ``log N(x̃_i; μ_ik, λ_k)``, bernoulli ``x̃ log ξ_ik + (1 − x̃) log(1 − ξ_ik)``."""
        x = self.check_x_noisy(x_noisy)
        return self._log_lik(x, self.group_means(h))

    def _log_lik(self, x, mu):
        if self.likelihood == "gaussian":
            return tvb.gaussian_log_density(x.unsqueeze(-2), mu, self.lam.unsqueeze(-1))
        log_xi1, log_xi0 = tagger_binary.flipped_log_probs(mu, self.flip_prob)
        return tvb.bernoulli_log_prob(x.unsqueeze(-2), log_xi1, log_xi0)

    def assignment_probs_given_h(self, x_noisy, h) -> torch.Tensor:
        """``p(z_i = k | h, x̃_i) ∝ ρ_k p(x̃_i | z_i = k, h)`` ``(..., B, K, N)``."""
        terms = self.log_likelihood_terms(x_noisy, h)
        return torch.softmax(self.log_mix_probs.unsqueeze(-1) + terms, dim=-2)

    def marginal_log_likelihood(self, x_noisy, h) -> torch.Tensor:
        """``log p(x̃ | h) = Σ_i log Σ_k ρ_k p(x̃_i | z_i = k, h)`` ``(..., B)`` (z summed out)."""
        terms = self.log_likelihood_terms(x_noisy, h)
        return torch.logsumexp(self.log_mix_probs.unsqueeze(-1) + terms, dim=-2).sum(-1)

    def log_joint(self, x_noisy, h) -> torch.Tensor:
        """``log p(x̃, h) = log p(x̃ | h) + Σ_k log N(h_k; 0, I)`` ``(..., B)``."""
        return self._log_joint(self.check_x_noisy(x_noisy), self._check_h(h))

    def _log_joint(self, x, h):
        """:meth:`log_joint` without input checks (the NUTS potential calls it thousands of times)."""
        terms = self._log_lik(x, h @ self.basis.T + self.offsets)
        prior = (-0.5 * (tvb.LOG_2PI + h ** 2)).sum((-1, -2))
        return torch.logsumexp(self.log_mix_probs.unsqueeze(-1) + terms, dim=-2).sum(-1) + prior

    def clean_mean_given_h(self, x_noisy, h) -> torch.Tensor:
        """``E[x_i | h, x̃]`` ``(..., B, N)``: gaussian
        ``Σ_k p(z_i=k | h, x̃_i) (σ² μ_ik + σ_k² x̃_i) / λ_k``; bernoulli
        ``P(x_i = 1 | h, x̃) = Σ_k p(z_i=k | h, x̃_i) sig(μ_ik) p(x̃_i | x_i=1) / p(x̃_i | z_i=k, h)``
        with ``p(x̃_i | z_i=k, h) = ξ_ik^x̃ (1 − ξ_ik)^(1−x̃)``."""
        x = self.check_x_noisy(x_noisy)
        mu = self.group_means(h)
        terms = self._log_lik(x, mu)
        resp = torch.softmax(self.log_mix_probs.unsqueeze(-1) + terms, dim=-2)
        xe = x.unsqueeze(-2)
        if self.likelihood == "gaussian":
            s2, sk2 = self.noise_std ** 2, self.group_vars.unsqueeze(-1)
            per_group = (s2 * mu + sk2 * xe) / (s2 + sk2)
        else:
            beta = self.flip_prob
            log_obs_given_1 = torch.where(xe > 0.5, torch.log1p(-beta), torch.log(beta))
            per_group = torch.exp(torch.nn.functional.logsigmoid(mu) + log_obs_given_1 - terms)
        return (resp * per_group).sum(-2)

    def clean_mean(self, x_noisy, pi, m) -> torch.Tensor:
        """Gaussian plug-in denoiser of a grouping estimate ``(π, m)`` (e.g. VB's):
        ``Σ_k π_ik (σ² m_ik + σ_k² x̃_i) / λ_k`` ``(B, N)`` — exactly ``E_q[x_i]`` under
        mean-field VB, since ``E[x_i | z_i=k, h, x̃_i]`` is linear in ``μ_ik``."""
        if self.likelihood != "gaussian":
            raise NotImplementedError("clean_mean is the Gaussian formula; binary VB returns q(x_i=1) "
                                      "as TaggerVBResult.x_probs")
        x = self.check_x_noisy(x_noisy)
        pi, m = self._check_groups(pi, x.shape[0], "pi"), self._check_groups(m, x.shape[0], "m")
        s2, sk2 = self.noise_std ** 2, self.group_vars.unsqueeze(-1)
        return (pi * (s2 * m + sk2 * x.unsqueeze(-2)) / (s2 + sk2)).sum(-2)

    # ------------------------------------------------------------------ generative side
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> TaggerSample:
        """Ancestral sampling of ``n`` images (SPEC §2.3)."""
        n = int(n)
        K, N, d = self.num_groups, self.num_pixels, self.basis_dim
        kw = dict(generator=generator, dtype=self.dtype)
        h = torch.randn(n, K, d, **kw).to(self.device)
        mu = h @ self.basis.T + self.offsets
        z = torch.multinomial(self.mix_probs.cpu(), n * N, replacement=True,
                              generator=generator).reshape(n, N).to(self.device)
        mu_z = mu.gather(1, z.unsqueeze(1)).squeeze(1)
        if self.likelihood == "gaussian":
            x = mu_z + self.group_stds[z] * torch.randn(n, N, **kw).to(self.device)
            x_noisy = x + self.noise_std * torch.randn(n, N, **kw).to(self.device)
        else:
            u = torch.rand(n, N, **kw).to(self.device)
            x = (u < torch.sigmoid(mu_z)).to(self.dtype)
            flips = (torch.rand(n, N, **kw).to(self.device) < self.flip_prob).to(self.dtype)
            x_noisy = (x + flips) % 2
        return TaggerSample(x=x, x_noisy=x_noisy, z=z, h=h, mu=mu)

    def pyro_model(self, x_noisy=None, num_samples: int = 1, collapse_x: bool = True):
        """The model as a Pyro program (SPEC §2.3).

        Plates ``batch`` (dim −2) × ``groups`` (dim −1) for ``h`` ``(B, K, d)`` (event dim
        ``d``), and ``batch`` × ``pixels`` (dim −1) for ``z`` ``(B, N)`` — marked
        ``infer={"enumerate": "parallel"}``, so use ``max_plate_nesting=2`` — and the
        pixels. With ``x_noisy=None`` it samples ``num_samples`` images: ``x`` from
        ``x | z, h`` and ``x_noisy`` from the corruption. With ``x_noisy`` observed and
        ``collapse_x=True`` (default) the clean ``x`` is integrated out in closed form:
        gaussian ``x̃_i | z_i=k, h ~ N(μ_ik, λ_k)``, bernoulli ``x̃_i | z_i=k, h ~ Bern(ξ_ik)``;
        with ``collapse_x=False`` ``x`` stays a latent site (bernoulli: enumerable too).
        Returns ``dict(h=, z=, x=, x_noisy=)`` (``x`` None when collapsed)."""
        if x_noisy is not None:
            x_noisy = self.check_x_noisy(x_noisy)
        B = int(num_samples) if x_noisy is None else x_noisy.shape[0]
        K, N, d = self.num_groups, self.num_pixels, self.basis_dim
        gaussian = self.likelihood == "gaussian"
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        x = None
        with pyro.plate("batch", B, dim=-2):
            with pyro.plate("groups", K, dim=-1):
                h = pyro.sample("h", dist.Normal(zero, 1.0).expand([d]).to_event(1))
            mu = (h @ self.basis.T + self.offsets).transpose(-1, -2)  # (B, N, K)
            with pyro.plate("pixels", N, dim=-1):
                z = pyro.sample("z", dist.Categorical(self.mix_probs), infer={"enumerate": "parallel"})
                loc = Vindex(mu)[..., z]
                if gaussian:
                    if x_noisy is not None and collapse_x:
                        x_noisy = pyro.sample("x_noisy", dist.Normal(loc, self.lam.sqrt()[z]), obs=x_noisy)
                    else:
                        x = pyro.sample("x", dist.Normal(loc, self.group_stds[z]))
                        x_noisy = pyro.sample("x_noisy", dist.Normal(x, self.noise_std), obs=x_noisy)
                else:
                    if x_noisy is not None and collapse_x:
                        log1, log0 = tagger_binary.flipped_log_probs(loc, self.flip_prob)
                        x_noisy = pyro.sample("x_noisy", dist.Bernoulli(logits=log1 - log0), obs=x_noisy)
                    else:
                        infer = {"enumerate": "parallel"} if x_noisy is not None else {}
                        x = pyro.sample("x", dist.Bernoulli(logits=loc), infer=infer)
                        probs = x * (1.0 - 2.0 * self.flip_prob) + self.flip_prob
                        x_noisy = pyro.sample("x_noisy", dist.Bernoulli(probs=probs), obs=x_noisy)
        return dict(h=h, z=z, x=x, x_noisy=x_noisy)
