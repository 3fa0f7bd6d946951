"""The temporal Gaussian hierarchy (SPEC §2.2; RLadder paper Appendix C, generalised).

    s_l,0                         ~ N(μ_init,l, diag σ_init,l²)        before the first frame
    p(s_L,t | s_L,t-1)            = N(A_L s_L,t-1, diag σ_L²)
    p(s_l,t | s_l,t-1, s_l+1,t)   = N(A_l s_l,t-1 + W_l s_l+1,t, diag σ_l²)     l < L
    x̃_t = s_0,t + N(0, σ_n² I),   observed only where the visibility mask o_t = 1

for frames ``t = 1..T``; level 0 is the observed process, ``x_t = s_0,t``. The class
holds validated parameters and delegates to ``temporal_exact`` (state-space form, Kalman
filter, RTS smoother, the optimal predictor) and ``temporal_vb`` (online VB filter, VB
smoother, ELBO). Time index convention of every result: index ``t`` = after frames
``1..t``, index 0 = the state before the first frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pyro
import pyro.distributions as dist
import scipy.linalg
import torch

from . import _validation as V
from . import gaussian_ops as ops
from . import temporal_exact, temporal_vb


@dataclass
class TemporalSample:
    """``levels[l]`` ``(n, T+1, n_l)`` (index 0 = ``s_l,0``, before the first frame);
    ``x`` ``(n, T, n_0)`` the clean observations ``s_0,1..T``; ``x_noisy`` ``(n, T, n_0)``
    with occluded entries set to 0; ``visibility`` ``(n, T, n_0)`` bool (True = observed)."""

    levels: list
    x: torch.Tensor
    x_noisy: torch.Tensor
    visibility: torch.Tensor


class TemporalGaussianHierarchy:
    """Linear-Gaussian temporal hierarchy (SPEC §2.2).

    ``transitions[l]`` ``(n_l, n_l)`` (``A_l``) and ``stds[l]`` ``(n_l,)`` for ``l = 0..L``;
    ``weights[l]`` ``(n_l, n_l+1)`` (``W_l``) for ``l = 0..L-1``; ``noise_std`` a positive
    scalar; ``init_stds[l]`` / ``init_means[l]`` ``(n_l,)`` the prior of ``s_l,0`` (default
    ones / zeros). Stored as tensors of ``dtype`` (float64 by default) on ``device``.
    """

    def __init__(self, transitions, weights, stds, noise_std, init_stds=None, init_means=None, *,
                 dtype: torch.dtype = torch.float64, device=None):
        self.dtype, self.device = dtype, device
        try:
            transitions, weights, stds = list(transitions), list(weights), list(stds)
        except TypeError:
            raise ValueError("transitions, weights and stds must be lists with one entry per level") from None
        if len(stds) < 1 or len(transitions) != len(stds) or len(weights) != len(stds) - 1:
            raise ValueError(f"transitions and stds need L+1 >= 1 entries and weights L: got lengths "
                             f"{len(transitions)}, {len(stds)} and {len(weights)}")
        conv = lambda v, n: V.as_tensor(v, n, dtype, device)  # noqa: E731
        self.stds = [conv(s, f"stds[{l}]") for l, s in enumerate(stds)]
        for l, s in enumerate(self.stds):
            V.check_ndim(s, 1, f"stds[{l}]", f"(n_{l},)")
            V.check_positive(s, f"stds[{l}]")
        widths = self.widths
        self.transitions = [conv(a, f"transitions[{l}]") for l, a in enumerate(transitions)]
        self.weights = [conv(w, f"weights[{l}]") for l, w in enumerate(weights)]
        for name, mats, shape in (("transitions", self.transitions, lambda l: (widths[l], widths[l])),
                                  ("weights", self.weights, lambda l: (widths[l], widths[l + 1]))):
            for l, m in enumerate(mats):
                V.check_finite(m, f"{name}[{l}]")
                if tuple(m.shape) != shape(l):
                    raise ValueError(f"{name}[{l}] has shape {tuple(m.shape)} but must be {shape(l)} "
                                     f"(level widths {widths})")
        self.noise_std = V.check_scalar(noise_std, "noise_std", dtype, device)
        self.init_stds = self._per_level(init_stds, "init_stds", 1.0, positive=True)
        self.init_means = self._per_level(init_means, "init_means", 0.0, positive=False)
        self._cache: dict = {}

    def _per_level(self, values, name, default, positive):
        if values is None:
            return [torch.full((n,), default, dtype=self.dtype, device=self.device) for n in self.widths]
        values = list(values)
        if len(values) != len(self.widths):
            raise ValueError(f"{name} needs {len(self.widths)} entries (one per level), got {len(values)}")
        out = []
        for l, v in enumerate(values):
            t = V.as_tensor(v, f"{name}[{l}]", self.dtype, self.device)
            V.check_ndim(t, 1, f"{name}[{l}]", f"(n_{l},)")
            V.check_width(t, self.widths[l], f"{name}[{l}]", f"level {l}")
            (V.check_positive if positive else V.check_finite)(t, f"{name}[{l}]")
            out.append(t)
        return out

    def parameters(self) -> dict:
        """The constructor's keyword arguments that rebuild this model (tensors):
        ``TemporalGaussianHierarchy(**m.parameters())`` equals ``m``
        (``explicit_models.model_files`` writes them to a parameter file)."""
        return dict(transitions=self.transitions, weights=self.weights, stds=self.stds, noise_std=self.noise_std,
                    init_stds=self.init_stds, init_means=self.init_means)

    # ------------------------------------------------------------------ properties
    @property
    def widths(self) -> list:
        return [int(s.shape[0]) for s in self.stds]

    @property
    def depth(self) -> int:
        return len(self.stds) - 1

    def __repr__(self) -> str:
        return f"TemporalGaussianHierarchy(widths={self.widths}, noise_std={float(self.noise_std):.4g})"

    def check_inputs(self, x_noisy, visibility=None):
        """Validate ``x_noisy`` ``(B, T, n_0)`` and ``visibility`` (same shape, 0/1 or bool;
        None = all visible). Returns ``(x, o)``: ``x`` with occluded entries set to 0 (they
        may hold anything, NaN included) and ``o`` the float mask."""
        x = x_noisy.to(dtype=self.dtype, device=self.device) if torch.is_tensor(x_noisy) else \
            V.as_tensor(x_noisy, "x_noisy", self.dtype, self.device)
        if x.dim() != 3 or x.shape[-1] != self.widths[0]:
            raise ValueError(f"x_noisy: expected shape (batch, steps, {self.widths[0]}), got {tuple(x.shape)}")
        if visibility is None:
            o = torch.ones_like(x)
        else:
            o = torch.as_tensor(visibility, device=x.device)
            if tuple(o.shape) != tuple(x.shape):
                raise ValueError(f"visibility has shape {tuple(o.shape)} but x_noisy has shape {tuple(x.shape)}")
            o = o.to(self.dtype)
            if not bool(((o == 0) | (o == 1)).all()):
                raise ValueError("visibility must hold only 0/1 (or bool) entries")
        if not bool(torch.isfinite(x[o > 0]).all()):
            raise ValueError("x_noisy contains NaN or infinite values at visible entries")
        return torch.where(o > 0, x, torch.zeros_like(x)), o

    # ------------------------------------------------------------------ constructors
    @classmethod
    def random(cls, widths, seed: int = 0, noise_std: float = 0.5, decays=None, rotation_speeds=None,
               scales=None, weight_scale: float = 1.0, init: str = "unit", **kwargs) -> "TemporalGaussianHierarchy":
        """A random model with level widths ``widths = [n_0, .., n_L]`` (ours; SPEC §2.2).

        ``A_l = ρ_l expm(θ_l K_l)``: a random rotation (``K_l`` skew-symmetric, entries
        ``N(0, 1/n_l)``) of speed ``θ_l`` shrunk by the decay ``ρ_l``. Defaults: ``ρ`` from
        0.5 at the bottom to 0.97 at the top, ``θ`` from 1.0 down to 0.1 (slow dynamics at
        the top). ``W_l ~ weight_scale · N(0, 1/n_l+1)``; ``σ_l = scale_l · sqrt(1 − ρ_l²)``
        (so a level's own dynamics alone would have stationary std ``scale_l``; default
        ``scales`` 1). ``init="unit"``: ``s_0 ~ N(0, I)``; ``"stationary"``: ``σ_init`` the
        stationary marginal stds of the model. Deterministic given ``seed``."""
        widths = [int(n) for n in widths]
        if len(widths) < 1 or min(widths) < 1:
            raise ValueError(f"widths must list at least one positive level width, got {widths}")
        L = len(widths) - 1
        frac = [l / L if L else 1.0 for l in range(L + 1)]
        decays = [0.5 + 0.47 * f for f in frac] if decays is None else list(decays)
        rotation_speeds = [1.0 - 0.9 * f for f in frac] if rotation_speeds is None else list(rotation_speeds)
        scales = [1.0] * (L + 1) if scales is None else list(scales)
        for name, v in (("decays", decays), ("rotation_speeds", rotation_speeds), ("scales", scales)):
            if len(v) != L + 1:
                raise ValueError(f"{name} needs {L + 1} entries (one per level), got {len(v)}")
        if not all(0.0 <= float(d) < 1.0 for d in decays):
            raise ValueError(f"decays must lie in [0, 1), got {decays}")
        g = torch.Generator().manual_seed(int(seed))
        randn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
        transitions, weights, stds = [], [], []
        for l, n in enumerate(widths):
            K = randn(n, n) / n ** 0.5
            rotation = torch.linalg.matrix_exp(float(rotation_speeds[l]) * (K - K.T) / 2 ** 0.5)
            transitions.append(float(decays[l]) * rotation)
            stds.append(torch.full((n,), float(scales[l]) * (1.0 - float(decays[l]) ** 2) ** 0.5,
                                   dtype=torch.float64))
            if l < L:
                weights.append(weight_scale * randn(n, widths[l + 1]) / widths[l + 1] ** 0.5)
        model = cls(transitions, weights, stds, noise_std, **kwargs)
        if init == "stationary":
            ss = temporal_exact.state_space(model)
            cov = torch.as_tensor(scipy.linalg.solve_discrete_lyapunov(ss.M.numpy(), ss.Q.numpy()))
            model = cls(transitions, weights, stds, noise_std,
                        init_stds=list(torch.split(cov.diagonal().sqrt(), widths)), **kwargs)
        elif init != "unit":
            raise ValueError(f"init must be 'unit' or 'stationary', got {init!r}")
        return model

    # ------------------------------------------------------------------ generative side
    def sample(self, n: int, steps: int, generator: Optional[torch.Generator] = None,
               visibility=None) -> TemporalSample:
        """Draw ``n`` sequences of ``steps`` frames (SPEC §2.2). ``visibility``: None (all
        observed), a probability ``p`` (each entry observed independently with probability
        ``p``; ``1 − p`` is the occlusion rate) or a 0/1 tensor broadcastable to
        ``(n, steps, n_0)``."""
        n, T, widths, L = int(n), int(steps), self.widths, self.depth
        randn = lambda *s: torch.randn(*s, generator=generator, dtype=self.dtype).to(self.device)  # noqa: E731
        cur = [self.init_means[l] + self.init_stds[l] * randn(n, w) for l, w in enumerate(widths)]
        eps = [self.stds[l] * randn(n, T, w) for l, w in enumerate(widths)]
        seqs = [[c] for c in cur]
        for t in range(T):
            for l in range(L, -1, -1):
                mean = cur[l] @ self.transitions[l].T
                if l < L:
                    mean = mean + cur[l + 1] @ self.weights[l].T
                cur[l] = mean + eps[l][:, t]
                seqs[l].append(cur[l])
        levels = [torch.stack(s, 1) for s in seqs]
        x = levels[0][:, 1:]
        x_noisy = x + self.noise_std * randn(n, T, widths[0])
        if visibility is None:
            o = torch.ones_like(x, dtype=torch.bool)
        elif isinstance(visibility, (int, float)) and not isinstance(visibility, bool):
            if not 0.0 <= float(visibility) <= 1.0:
                raise ValueError(f"visibility must be a probability in [0, 1] or a mask, got {visibility}")
            o = torch.rand(n, T, widths[0], generator=generator, dtype=self.dtype).to(self.device) < float(visibility)
        else:
            o = torch.as_tensor(visibility, device=self.device)
            try:
                o = o.expand(n, T, widths[0])
            except RuntimeError:
                raise ValueError(f"visibility has shape {tuple(o.shape)}, not broadcastable to "
                                 f"{(n, T, widths[0])}") from None
            if not bool(((o == 0) | (o == 1)).all()):
                raise ValueError("visibility must hold only 0/1 (or bool) entries")
            o = o.to(torch.bool).clone()
        return TemporalSample(levels, x, torch.where(o, x_noisy, torch.zeros_like(x_noisy)), o)

    def log_joint(self, levels, x_noisy, visibility=None) -> torch.Tensor:
        """``log p(x̃_visible, s_0..s_T)`` per sequence ``(B,)``; ``levels[l]`` ``(B, T+1, n_l)``."""
        x, o = self.check_inputs(x_noisy, visibility)
        if len(levels) != self.depth + 1:
            raise ValueError(f"levels: expected {self.depth + 1} levels, got {len(levels)}")
        s = [torch.as_tensor(v, dtype=self.dtype, device=self.device) for v in levels]
        for l, v in enumerate(s):
            if tuple(v.shape) != (x.shape[0], x.shape[1] + 1, self.widths[l]):
                raise ValueError(f"levels[{l}]: expected shape {(x.shape[0], x.shape[1] + 1, self.widths[l])}, "
                                 f"got {tuple(v.shape)}")
        out = sum(ops.diag_normal_log_density(s[l][:, 0], self.init_means[l], self.init_stds[l])
                  for l in range(self.depth + 1))
        for l in range(self.depth + 1):
            mean = s[l][:, :-1] @ self.transitions[l].T
            if l < self.depth:
                mean = mean + s[l + 1][:, 1:] @ self.weights[l].T
            out = out + ops.diag_normal_log_density(s[l][:, 1:], mean, self.stds[l]).sum(-1)
        obs = dist.Normal(s[0][:, 1:], self.noise_std).log_prob(x)
        return out + (obs * o).sum((-1, -2))

    def pyro_model(self, x_noisy=None, visibility=None, num_samples: int = 1, steps: Optional[int] = None):
        """The model as a Pyro program (SPEC §2.2). Sites ``s_{l}_{t}`` (``t = 0..T``) and
        the observations ``x_{t}`` (``t = 1..T``, masked by ``visibility``), inside
        ``pyro.plate("data", B)``. Without ``x_noisy`` it samples ``num_samples`` sequences
        of ``steps`` frames. Returns the levels ``[(B, T+1, n_l)]``."""
        if x_noisy is not None:
            x, o = self.check_inputs(x_noisy, visibility)
            B, T = x.shape[:2]
        else:
            if steps is None:
                raise ValueError("steps is required when x_noisy is not given")
            B, T, x, o = int(num_samples), int(steps), None, None
        L = self.depth
        with pyro.plate("data", B):
            cur = [pyro.sample(f"s_{l}_0", dist.Normal(self.init_means[l], self.init_stds[l]).to_event(1))
                   for l in range(L + 1)]
            seqs = [[c] for c in cur]
            for t in range(1, T + 1):
                for l in range(L, -1, -1):
                    mean = cur[l] @ self.transitions[l].T
                    if l < L:
                        mean = mean + cur[l + 1] @ self.weights[l].T
                    cur[l] = pyro.sample(f"s_{l}_{t}", dist.Normal(mean, self.stds[l]).to_event(1))
                    seqs[l].append(cur[l])
                obs = dist.Normal(cur[0], self.noise_std)
                if o is not None:
                    obs = obs.mask(o[:, t - 1] > 0)
                pyro.sample(f"x_{t}", obs.to_event(1), obs=None if x is None else x[:, t - 1])
        return [torch.stack(s, 1) for s in seqs]

    # ------------------------------------------------------------------ exact inference
    def state_space(self) -> temporal_exact.StateSpace:
        """The LDS form ``s_t = M s_t-1 + N(0, Q)`` (SPEC §2.2 "Exact")."""
        return temporal_exact.state_space(self)

    def kalman_filter(self, x_noisy, visibility=None) -> temporal_exact.KalmanResult:
        """Exact filtering posteriors, one-step-ahead predictions and ``log p(x̃_1:T)``."""
        return temporal_exact.kalman_filter(self, *self.check_inputs(x_noisy, visibility))

    def rts_smoother(self, x_noisy, visibility=None) -> temporal_exact.SmootherResult:
        """Exact smoothing posteriors ``p(s_t | x̃_1:T)``, ``t = 0..T``."""
        return temporal_exact.rts_smoother(self, *self.check_inputs(x_noisy, visibility))

    def optimal_prediction_mse(self, num_sequences: int, steps: int, visibility=None, seed: int = 0,
                               batch_size: int = 1000) -> temporal_exact.PredictionMSE:
        """Bayes-optimal next-frame prediction MSE ``E tr Cov(x_t+1 | x̃_1:t)``, ``t = 1..steps``,
        by Monte Carlo over fresh sequences, with standard errors (SPEC §4)."""
        return temporal_exact.optimal_prediction_mse(self, num_sequences, steps, visibility, seed, batch_size)

    # ------------------------------------------------------------------ variational Bayes
    def vb_filter(self, x_noisy, visibility=None, sweeps_per_step: int = 50,
                  covariance: str = "full") -> temporal_vb.VBFilterResult:
        """The paper's online VB (past fixed, future term dropped), ``sweeps_per_step`` level
        sweeps per frame (the default reaches the per-frame fixed point in practice); see
        :func:`temporal_vb.vb_filter`."""
        return temporal_vb.vb_filter(self, *self.check_inputs(x_noisy, visibility), sweeps_per_step, covariance)

    def vb_smoother(self, x_noisy, visibility=None, sweeps: int = 100, covariance: str = "full",
                    init="prior", tol: Optional[float] = None) -> temporal_vb.VBSmootherResult:
        """Mean-field VB over levels and time; see :func:`temporal_vb.vb_smoother`."""
        return temporal_vb.vb_smoother(self, *self.check_inputs(x_noisy, visibility), sweeps, covariance,
                                       init, tol)

    def vb_smoother_fixed_point(self, x_noisy, visibility=None, covariance: str = "full", tol: float = 1e-12,
                                max_sweeps: int = 5000, init="prior") -> temporal_vb.VBSmootherResult:
        """The VB smoother iterated to its fixed point (Anderson-accelerated); see
        :func:`temporal_vb.vb_smoother_fixed_point`."""
        return temporal_vb.vb_smoother_fixed_point(self, *self.check_inputs(x_noisy, visibility), covariance,
                                                   tol, max_sweeps, init)

    def elbo(self, x_noisy, means, covs, visibility=None, covariance: str = "full") -> torch.Tensor:
        """``E_q[log p(x̃, s_0:T)] + H[q]`` per sequence; see :func:`temporal_vb.elbo`."""
        return temporal_vb.elbo(self, *self.check_inputs(x_noisy, visibility), means, covs, covariance)
