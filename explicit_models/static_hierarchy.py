"""The static Gaussian hierarchy (SPEC §2.1; RLadder paper Appendix B, generalised).

    p(c)           = π_c                                  (class-mixture top only)
    p(s_L | c)     = N(s_L; μ_c, diag τ_c²)               or N(s_L; μ_L, diag σ_L²)
    p(s_l | s_l+1) = N(s_l; W_l s_l+1 + b_l, diag σ_l²)   l = 0 .. L-1
    p(x̃ | s_0)     = N(x̃; s_0, σ_n² I)

The class holds validated parameters (read-only after construction: derived operators are
cached) and delegates the mathematics to ``static_exact`` (exact posterior and Bayes
scores) and ``static_vb`` (variational Bayes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pyro
import pyro.distributions as dist
import torch

from . import _validation as V
from . import gaussian_ops as ops
from . import static_exact, static_vb, static_vb_fixed_point


@dataclass
class HierarchySample:
    """``levels[l]`` ``(n, n_l)`` for ``l = 0..L``; ``classes`` ``(n,)`` long or None;
    ``x`` (= ``levels[0]``, the clean input) and ``x_noisy`` ``(n, n_0)``."""

    levels: list
    classes: Optional[torch.Tensor]
    x: torch.Tensor
    x_noisy: torch.Tensor


class StaticGaussianHierarchy:
    """Linear-Gaussian hierarchy with a Gaussian or class-mixture top (SPEC §2.1).

    ``weights[l]`` ``(n_l, n_l+1)``, ``biases[l]`` and ``stds[l]`` ``(n_l,)`` for
    ``l = 0..L-1`` (``L ≥ 1``); either ``top_mean``/``top_std`` ``(n_L,)`` or
    ``class_means``/``class_stds`` ``(C, n_L)`` and ``class_probs`` ``(C,)``;
    ``noise_std`` a positive scalar. Inputs may be tensors, arrays or lists; they are
    stored as tensors of ``dtype`` (float64 by default) on ``device``.
    """

    def __init__(self, weights, biases, stds, noise_std, top_mean=None, top_std=None,
                 class_means=None, class_stds=None, class_probs=None, *,
                 dtype: torch.dtype = torch.float64, device=None):
        self.dtype, self.device = dtype, device
        try:
            weights, biases, stds = list(weights), list(biases), list(stds)
        except TypeError:
            raise ValueError("weights, biases and stds must be lists with one entry per level") from None
        if not (len(weights) == len(biases) == len(stds)) or len(weights) < 1:
            raise ValueError(f"weights, biases and stds must be lists of the same length L >= 1, "
                             f"got lengths {len(weights)}, {len(biases)}, {len(stds)}")
        conv = lambda v, n: V.as_tensor(v, n, dtype, device)  # noqa: E731
        self.weights = [conv(w, f"weights[{l}]") for l, w in enumerate(weights)]
        self.biases = [conv(b, f"biases[{l}]") for l, b in enumerate(biases)]
        self.stds = [conv(s, f"stds[{l}]") for l, s in enumerate(stds)]
        self.noise_std = V.check_scalar(noise_std, "noise_std", dtype, device)
        gauss = (top_mean, top_std)
        mix = (class_means, class_stds, class_probs)
        if any(v is not None for v in gauss) and any(v is not None for v in mix):
            raise ValueError("top: give either top_mean/top_std (Gaussian top) or "
                             "class_means/class_stds/class_probs (class-mixture top), not both")
        if all(v is None for v in gauss + mix):
            raise ValueError("top: give either top_mean/top_std (Gaussian top) or "
                             "class_means/class_stds/class_probs (class-mixture top)")
        self.top_mean = V.optional_tensor(top_mean, "top_mean", dtype, device)
        self.top_std = V.optional_tensor(top_std, "top_std", dtype, device)
        self.class_means = V.optional_tensor(class_means, "class_means", dtype, device)
        self.class_stds = V.optional_tensor(class_stds, "class_stds", dtype, device)
        self.class_probs = V.optional_tensor(class_probs, "class_probs", dtype, device)
        self._validate()
        self._cache: dict = {}

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        L = len(self.weights)
        for l in range(L):
            V.check_ndim(self.stds[l], 1, f"stds[{l}]", f"(n_{l},)")
            V.check_positive(self.stds[l], f"stds[{l}]")
            V.check_ndim(self.biases[l], 1, f"biases[{l}]", f"(n_{l},)")
            V.check_finite(self.biases[l], f"biases[{l}]")
            V.check_width(self.biases[l], self.stds[l].shape[0], f"biases[{l}]", f"level {l} (from stds[{l}])")
            V.check_ndim(self.weights[l], 2, f"weights[{l}]", f"(n_{l}, n_{l + 1})")
            V.check_finite(self.weights[l], f"weights[{l}]")
        if self.class_means is None:
            for name in ("top_mean", "top_std"):
                if getattr(self, name) is None:
                    raise ValueError(f"{name} is required for a Gaussian top")
            V.check_ndim(self.top_std, 1, "top_std", f"(n_{L},)")
            V.check_positive(self.top_std, "top_std")
            V.check_ndim(self.top_mean, 1, "top_mean", f"(n_{L},)")
            V.check_finite(self.top_mean, "top_mean")
            V.check_width(self.top_mean, self.top_std.shape[0], "top_mean", f"level {L} (from top_std)")
            n_top = self.top_std.shape[0]
        else:
            for name in ("class_means", "class_stds", "class_probs"):
                if getattr(self, name) is None:
                    raise ValueError(f"{name} is required for a class-mixture top")
            V.check_ndim(self.class_stds, 2, "class_stds", f"(C, n_{L})")
            V.check_positive(self.class_stds, "class_stds")
            V.check_ndim(self.class_means, 2, "class_means", f"(C, n_{L})")
            V.check_finite(self.class_means, "class_means")
            V.check_ndim(self.class_probs, 1, "class_probs", "(C,)")
            V.check_probs(self.class_probs, "class_probs")
            if self.class_means.shape != self.class_stds.shape:
                raise ValueError(f"class_means has shape {tuple(self.class_means.shape)} but "
                                 f"class_stds has shape {tuple(self.class_stds.shape)}")
            if self.class_probs.shape[0] != self.class_means.shape[0]:
                raise ValueError(f"class_probs has {self.class_probs.shape[0]} entries but "
                                 f"class_means has {self.class_means.shape[0]} classes")
            n_top = self.class_stds.shape[1]
        widths = [int(s.shape[0]) for s in self.stds] + [int(n_top)]
        for l, W in enumerate(self.weights):
            if tuple(W.shape) != (widths[l], widths[l + 1]):
                raise ValueError(f"weights[{l}] has shape ({W.shape[0]}, {W.shape[1]}) but levels "
                                 f"{l} and {l + 1} have widths {widths[l]} and {widths[l + 1]}")

    def check_x_noisy(self, x_noisy, name: str = "x_noisy") -> torch.Tensor:
        """Return ``x_noisy`` as a ``(batch, n_0)`` tensor of the model's dtype, or raise."""
        return V.check_x_noisy(x_noisy, self.widths[0], self.dtype, self.device, name)

    # ------------------------------------------------------------------ properties
    @property
    def widths(self) -> list:
        top = self.top_std if self.class_stds is None else self.class_stds[0]
        return [int(s.shape[0]) for s in self.stds] + [int(top.shape[0])]

    @property
    def depth(self) -> int:
        return len(self.weights)

    @property
    def has_mixture_top(self) -> bool:
        return self.class_means is not None

    @property
    def num_classes(self) -> int:
        return int(self.class_probs.shape[0]) if self.has_mixture_top else 0

    def _params(self) -> dict:
        return dict(weights=self.weights, biases=self.biases, stds=self.stds, noise_std=self.noise_std,
                    top_mean=self.top_mean, top_std=self.top_std, class_means=self.class_means,
                    class_stds=self.class_stds, class_probs=self.class_probs)

    def parameters(self) -> dict:
        """The constructor's keyword arguments that rebuild this model (tensors; the unused
        top's arguments left out): ``StaticGaussianHierarchy(**m.parameters())`` equals ``m``
        (``explicit_models.model_files`` writes them to a parameter file)."""
        return {k: v for k, v in self._params().items() if v is not None}

    def to(self, dtype: Optional[torch.dtype] = None, device=None) -> "StaticGaussianHierarchy":
        """A copy of the model with parameters of ``dtype`` on ``device``."""
        dtype = self.dtype if dtype is None else dtype
        device = self.device if device is None else device
        conv = lambda v: None if v is None else (  # noqa: E731
            [t.to(dtype=dtype, device=device) for t in v] if isinstance(v, list) else v.to(dtype=dtype, device=device))
        return StaticGaussianHierarchy(**{k: conv(v) for k, v in self._params().items()},
                                       dtype=dtype, device=device)

    def __repr__(self) -> str:
        top = f"mixture top, C={self.num_classes}" if self.has_mixture_top else "Gaussian top"
        return f"StaticGaussianHierarchy(widths={self.widths}, {top}, noise_std={float(self.noise_std):.4g})"

    # ------------------------------------------------------------------ constructors
    @classmethod
    def paper_scalar(cls, mu_z=0.0, sigma_z=1.0, w_yz=1.0, sigma_y=0.5, w_x=1.0, sigma_x=0.3,
                     noise_std=0.5, **kwargs) -> "StaticGaussianHierarchy":
        """The RLadder paper's scalar ``x → y → z`` model, ``(s_0, s_1, s_2) = (x, y, z)``:
        ``p(z) = N(μ_z, σ_z²)``, ``p(y|z) = N(w_yz z, σ_y²)``, ``p(x|y) = N(w_x y, σ_x²)``,
        ``p(x̃|x) = N(x, σ_n²)`` (SPEC §2.1). Default values are ours."""
        return cls(weights=[[[w_x]], [[w_yz]]], biases=[[0.0], [0.0]], stds=[[sigma_x], [sigma_y]],
                   noise_std=noise_std, top_mean=[mu_z], top_std=[sigma_z], **kwargs)

    @classmethod
    def random(cls, widths, num_classes: Optional[int] = None, seed: int = 0, noise_std: float = 1.0,
               weight_scale: float = 1.0, bias_scale: float = 0.1, std_range=(0.1, 0.3),
               top_std: float = 1.0, class_separation: float = 1.0, class_std: float = 0.5,
               random_class_probs: bool = False, diagonal_links: bool = False,
               **kwargs) -> "StaticGaussianHierarchy":
        """A random model with level widths ``widths = [n_0, .., n_L]`` (ours; SPEC §2.1).

        ``W_l ~ weight_scale · N(0, 1/n_l+1)`` (or, with ``diagonal_links``, diagonal
        ``±weight_scale · U(0.5, 1.5)``; needs equal widths), ``b_l ~ N(0, bias_scale²)``,
        ``σ_l`` log-uniform in ``std_range``. Gaussian top: ``μ_L ~ N(0, bias_scale²)``,
        std ``top_std``. Mixture top (``num_classes`` = C): ``μ_c ~ N(0, class_separation²)``,
        stds ``class_std``, uniform ``π`` (or a random one with ``random_class_probs``).
        Deterministic given ``seed``. The defaults make classes distinguishable but not
        trivially so: for widths ``[64, 32, 16]``, C = 10 the Bayes error is about 1 % and
        the Wiener filter's MSE about 1.26 × the Bayes MSE (larger ``class_separation`` →
        easier classes, smaller ``class_std`` / larger ``noise_std`` → bigger Wiener gap).
        """
        widths = [int(n) for n in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths must list at least two positive level widths, got {widths}")
        if diagonal_links and len(set(widths)) != 1:
            raise ValueError(f"widths: diagonal_links needs equal widths, got {widths}")
        g = torch.Generator().manual_seed(int(seed))
        f64 = torch.float64
        randn = lambda *s: torch.randn(*s, generator=g, dtype=f64)  # noqa: E731
        rand = lambda *s: torch.rand(*s, generator=g, dtype=f64)  # noqa: E731
        lo, hi = (torch.log(torch.tensor(float(v), dtype=f64)) for v in std_range)
        weights, biases, stds = [], [], []
        for l in range(len(widths) - 1):
            n, m = widths[l], widths[l + 1]
            if diagonal_links:
                sign = torch.where(rand(n) < 0.5, -1.0, 1.0)
                weights.append(torch.diag(weight_scale * sign * (0.5 + rand(n))))
            else:
                weights.append(weight_scale * randn(n, m) / m ** 0.5)
            biases.append(bias_scale * randn(n))
            stds.append(torch.exp(lo + (hi - lo) * rand(n)))
        top = {}
        nL = widths[-1]
        if num_classes is None:
            top = dict(top_mean=bias_scale * randn(nL), top_std=torch.full((nL,), float(top_std), dtype=f64))
        else:
            C = int(num_classes)
            if C < 1:
                raise ValueError(f"num_classes must be positive, got {num_classes}")
            probs = torch.softmax(0.5 * randn(C), 0) if random_class_probs else torch.full((C,), 1.0 / C, dtype=f64)
            top = dict(class_means=class_separation * randn(C, nL),
                       class_stds=torch.full((C, nL), float(class_std), dtype=f64), class_probs=probs)
        return cls(weights, biases, stds, noise_std, **top, **kwargs)

    # ------------------------------------------------------------------ generative side
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> HierarchySample:
        """Draw ``n`` samples ``(c, s_L, .., s_0, x̃)`` by ancestral sampling (SPEC §2.1)."""
        n = int(n)
        randn = lambda k: torch.randn(n, k, generator=generator, dtype=self.dtype).to(self.device)  # noqa: E731
        widths = self.widths
        classes = None
        if self.has_mixture_top:
            classes = torch.multinomial(self.class_probs.cpu(), n, replacement=True,
                                        generator=generator).to(self.device)
            top = self.class_means[classes] + self.class_stds[classes] * randn(widths[-1])
        else:
            top = self.top_mean + self.top_std * randn(widths[-1])
        levels = [None] * (self.depth + 1)
        levels[-1] = top
        for l in reversed(range(self.depth)):
            levels[l] = levels[l + 1] @ self.weights[l].T + self.biases[l] + self.stds[l] * randn(widths[l])
        x_noisy = levels[0] + self.noise_std * randn(widths[0])
        return HierarchySample(levels, classes, levels[0], x_noisy)

    def log_joint(self, levels, x_noisy, classes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``log p(x̃, s_0..s_L, c)`` per sample ``(B,)`` (SPEC §2.1). With a mixture top and
        ``classes=None`` the class is summed out: ``log p(x̃, s_0..s_L)``."""
        x = self.check_x_noisy(x_noisy)
        if len(levels) != self.depth + 1:
            raise ValueError(f"levels: expected {self.depth + 1} levels, got {len(levels)}")
        s = [self.check_x_noisy(v, f"levels[{l}]") if l == 0 else
             V.check_x_noisy(v, self.widths[l], self.dtype, self.device, f"levels[{l}]")
             for l, v in enumerate(levels)]
        out = ops.diag_normal_log_density(x, s[0], self.noise_std.expand(self.widths[0]))
        for l in range(self.depth):
            out = out + ops.diag_normal_log_density(s[l], s[l + 1] @ self.weights[l].T + self.biases[l],
                                                    self.stds[l])
        top = s[-1]
        if not self.has_mixture_top:
            return out + ops.diag_normal_log_density(top, self.top_mean, self.top_std)
        per_class = (ops.diag_normal_log_density(top.unsqueeze(1), self.class_means, self.class_stds)
                     + self.class_probs.log())  # (B, C)
        if classes is None:
            return out + torch.logsumexp(per_class, dim=-1)
        classes = torch.as_tensor(classes, device=per_class.device).long()
        return out + per_class.gather(1, classes.reshape(-1, 1)).squeeze(1)

    def pyro_model(self, x_noisy=None, num_samples: int = 1):
        """The model as a Pyro program (SPEC §2.1). Sites: ``c`` (mixture top; marked for
        parallel enumeration), ``s_L .. s_0`` and the observed ``x_noisy``, all inside
        ``pyro.plate("data", B)``. With ``x_noisy=None`` it samples ``num_samples`` points.
        Returns the list of sampled levels ``[s_0, .., s_L]``."""
        if x_noisy is not None:
            x_noisy = self.check_x_noisy(x_noisy)
        B = int(num_samples) if x_noisy is None else x_noisy.shape[0]
        levels = [None] * (self.depth + 1)
        with pyro.plate("data", B):
            if self.has_mixture_top:
                c = pyro.sample("c", dist.Categorical(self.class_probs), infer={"enumerate": "parallel"})
                loc, scale = self.class_means[c], self.class_stds[c]
            else:
                loc, scale = self.top_mean, self.top_std
            s = pyro.sample(f"s_{self.depth}", dist.Normal(loc, scale).to_event(1))
            levels[-1] = s
            for l in reversed(range(self.depth)):
                s = pyro.sample(f"s_{l}", dist.Normal(s @ self.weights[l].T + self.biases[l],
                                                      self.stds[l]).to_event(1))
                levels[l] = s
            pyro.sample("x_noisy", dist.Normal(s, self.noise_std).to_event(1), obs=x_noisy)
        return levels

    # ------------------------------------------------------------------ exact inference, scores
    def exact_posterior(self, x_noisy, return_covs: bool = True) -> static_exact.ExactPosterior:
        """Exact posterior of all levels, ``p(c | x̃)`` and ``log p(x̃)`` (SPEC §2.1); see
        :class:`~explicit_models.static_exact.ExactPosterior`. With a mixture top and large
        batches pass ``return_covs=False``: the covariances are ``(B, n_l, n_l)`` then."""
        return static_exact.exact_posterior(self, self.check_x_noisy(x_noisy), return_covs)

    def prior_marginals(self):
        """Class-averaged prior ``(means[l] (n_l,), covs[l] (n_l, n_l))`` of every level."""
        return static_exact.prior_marginals(self)

    def optimal_denoiser(self, x_noisy) -> torch.Tensor:
        """``E[s_0 | x̃]`` ``(B, n_0)``, the Bayes-optimal denoiser (SPEC §4)."""
        return static_exact.optimal_denoiser(self, self.check_x_noisy(x_noisy))

    def bayes_mse(self, x_noisy) -> torch.Tensor:
        """``mean_b tr Cov(s_0 | x̃_b)`` (0-d tensor), summed over units (SPEC §4)."""
        return static_exact.bayes_mse(self, self.check_x_noisy(x_noisy))

    def bayes_error(self, x_noisy) -> torch.Tensor:
        """``mean_b (1 − max_c p(c | x̃_b))`` (mixture top only; SPEC §2.1, §4)."""
        return static_exact.bayes_error(self, self.check_x_noisy(x_noisy))

    def wiener_denoiser(self):
        """``(A, a)``: the best affine denoiser ``x̂ = x̃ @ A.T + a`` (SPEC §4)."""
        A, a, _ = static_exact.wiener(self)
        return A, a

    def wiener_mse(self) -> torch.Tensor:
        """Expected squared error of the Wiener denoiser, summed over the ``n_0`` units."""
        return static_exact.wiener(self)[2]

    # ------------------------------------------------------------------ variational Bayes
    def vb(self, x_noisy, sweeps: int, covariance: str = "full", init="prior",
           relaxation: float = 1.0, class_warmup: int = 0) -> static_vb.VBResult:
        """Mean-field VB coordinate ascent (SPEC §2.1); see :func:`static_vb.run_vb`."""
        return static_vb.run_vb(self, self.check_x_noisy(x_noisy), sweeps, covariance, init, relaxation,
                                class_warmup)

    def vb_fixed_point(self, x_noisy, covariance: str = "full", tol: float = 1e-13, max_sweeps: int = 20000,
                       init="prior", acceleration: Optional[str] = "anderson",
                       memory: Optional[int] = None) -> static_vb_fixed_point.VBFixedPoint:
        """Iterate VB to its fixed point; see :func:`static_vb_fixed_point.vb_fixed_point`."""
        return static_vb_fixed_point.vb_fixed_point(self, self.check_x_noisy(x_noisy), covariance, tol, max_sweeps,
                                        init, acceleration, memory)

    def elbo(self, x_noisy, means, covs, class_probs=None, covariance: str = "full") -> torch.Tensor:
        """``E_q[log p(x̃, s, c)] + H[q]`` per sample (SPEC §2.1); see :func:`static_vb.elbo`."""
        return static_vb.elbo(self, self.check_x_noisy(x_noisy), means, covs, class_probs, covariance)
