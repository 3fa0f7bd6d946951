"""Inference in the Tagger mixture (SPEC §2.3): VB, the TAG inputs, the grouping cost and
the gold standards, as methods of :class:`~explicit_models.tagger_mixture.TaggerMixture`
(a mixin: it uses the model's validated parameters and input checks)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from . import _validation as V
from . import tagger_binary, tagger_gold
from . import tagger_vb as tvb
from .tagger_gold import GoldStandard
from .tagger_vb import TaggerVBResult


@dataclass
class TagInputs:
    """The TAG engine's per-group inputs (SPEC §2.3, Tagger eq. 4–5): ``delta_z`` ``δz``
    and ``mask_likelihood`` ``L(m)``, both ``(B, K, N)``."""

    delta_z: torch.Tensor
    mask_likelihood: torch.Tensor


@dataclass
class TaggerVBState:
    """Final state of :meth:`TaggerMixture.vb_converged`: ``pi``, ``m``, ``v`` ``(B, K, N)``,
    ``eta`` ``(B, K, d)``, ``S`` ``(B, K, d, d)``, ``elbo`` ``(B,)``, ``iterations`` (number of
    VB iterations run), ``converged`` ``(B,)`` bool (last ELBO change ``< tol``)."""

    pi: torch.Tensor
    eta: torch.Tensor
    S: torch.Tensor
    m: torch.Tensor
    v: torch.Tensor
    elbo: torch.Tensor
    iterations: int
    converged: torch.Tensor


class TaggerInference:
    """VB, TAG inputs, grouping cost and gold standards of a Tagger mixture (mixin)."""

    # ------------------------------------------------------------------ variational Bayes
    def _initial_log_pi(self, B: int, init, generator) -> torch.Tensor:
        K, N = self.num_groups, self.num_pixels
        if isinstance(init, str):
            if init == "random":
                logits = torch.randn(B, K, N, generator=generator, dtype=self.dtype).to(self.device)
                return torch.log_softmax(logits, dim=-2)
            if init == "prior":
                return self.log_mix_probs.reshape(1, K, 1).expand(B, K, N).clone()
            raise ValueError(f"init must be 'random', 'prior' or a (B, K, N) tensor of π0, got {init!r}")
        pi0 = self._check_groups(init, B, "init")
        if not bool((pi0 >= 0).all()) or not torch.allclose(pi0.sum(-2), torch.ones((), dtype=self.dtype),
                                                            atol=1e-6):
            raise ValueError("init: π0 must be non-negative and sum to 1 over groups (dim 1)")
        return torch.log(pi0 / pi0.sum(-2, keepdim=True))

    def _prior_q_h(self, B: int):
        K, d = self.num_groups, self.basis_dim
        eta = torch.zeros(B, K, d, dtype=self.dtype, device=self.device)
        S = torch.eye(d, dtype=self.dtype, device=self.device).expand(B, K, d, d).clone()
        return eta, S, torch.zeros(B, K, dtype=self.dtype, device=self.device)

    def vb(self, x_noisy, iters: int, init="random", generator: Optional[torch.Generator] = None) -> TaggerVBResult:
        """``iters`` iterations of mean-field VB (SPEC §2.3), each ``q(h_k)`` for every ``k``
        (given the current ``π``) then ``q(z)``. ``init``: ``"random"`` — ``π0`` the softmax
        over groups of ``N(0, 1)`` logits, like Tagger's init (uses ``generator``);
        ``"prior"`` — ``π0 = ρ``: with exchangeable groups (equal ``β_k``, ``σ_k``, ``ρ_k``)
        every group then gets the same ``q(h_k)`` and VB stays on that symmetric saddle
        forever, so use it only to show exactly that; or a ``(B, K, N)`` tensor ``π0``.
        ``q(h)`` starts at the prior ``N(0, I)`` (it is not used: the first update is
        ``q(h) | π0``). Gaussian: :func:`tagger_vb.run_vb`; bernoulli: the
        Jaakkola–Jordan bound of :func:`tagger_binary.run_vb_binary`."""
        x = self.check_x_noisy(x_noisy)
        log_pi0 = self._initial_log_pi(x.shape[0], init, generator)
        eta0, S0, logdet0 = self._prior_q_h(x.shape[0])
        if self.likelihood == "gaussian":
            return tvb.run_vb(x, self.basis, self.offsets, self.lam, self.log_mix_probs, iters,
                              log_pi0, eta0, S0, logdet0)
        return tagger_binary.run_vb_binary(x, self.basis, self.offsets, self.flip_prob, self.log_mix_probs,
                                           iters, log_pi0, eta0, S0, logdet0)

    def vb_converged(self, x_noisy, max_iters: int = 500, tol: float = 1e-8, init="random",
                     generator: Optional[torch.Generator] = None) -> TaggerVBState:
        """Run VB (as :meth:`vb`) until every sample's ELBO changed by less than ``tol``
        (absolute, nats per image) in the last iteration, or ``max_iters`` iterations;
        returns the final state only."""
        x = self.check_x_noisy(x_noisy)
        B = x.shape[0]
        log_pi = self._initial_log_pi(B, init, generator)
        gaussian = self.likelihood == "gaussian"
        if not gaussian:
            eta0, S0, _ = self._prior_q_h(B)
            m0, v0 = tvb.predicted_moments(eta0, S0, self.basis, self.offsets)
            log_phi = tagger_binary.initial_log_phi(x, log_pi, self.flip_prob)
            zeta = tagger_binary.zeta_update(m0, v0)
        prev = None
        it = 0
        converged = torch.zeros(B, dtype=torch.bool, device=x.device)
        while it < max(int(max_iters), 1):
            it += 1
            if gaussian:
                eta, S, logdet = tvb.appearance_update(x, log_pi.exp(), self.basis, self.offsets, self.lam)
                m, v = tvb.predicted_moments(eta, S, self.basis, self.offsets)
                pi, log_pi = tvb.assignment_update(x, m, v, self.lam, self.log_mix_probs)
                e = tvb.elbo(x, pi, log_pi, eta, S, logdet, self.basis, self.offsets, self.lam, self.log_mix_probs)
            else:
                log_phi, zeta, eta, S, logdet, m, v = tagger_binary.vb_iteration_binary(
                    x, log_phi, zeta, self.basis, self.offsets, self.flip_prob, self.log_mix_probs)
                e = tagger_binary.elbo_binary(x, log_phi, eta, S, logdet, zeta, self.basis, self.offsets,
                                              self.flip_prob, self.log_mix_probs)
                pi = log_phi.exp().sum(-1)
            if prev is not None:
                converged = (e - prev).abs() < tol
                if bool(converged.all()):
                    break
            prev = e
        if gaussian:
            pi = log_pi.exp()
        return TaggerVBState(pi=pi, eta=eta, S=S, m=m, v=v, elbo=e, iterations=it, converged=converged)

    def elbo(self, x_noisy, pi, eta, S) -> torch.Tensor:
        """Gaussian ELBO ``(B,)`` of ``q(z) = π``, ``q(h_k) = N(η_k, S_k)`` (SPEC §2.3)."""
        if self.likelihood != "gaussian":
            raise NotImplementedError("elbo(): the binary ELBO needs q(z, x); see tagger_binary.elbo_binary")
        x = self.check_x_noisy(x_noisy)
        pi = self._check_groups(pi, x.shape[0], "pi")
        log_pi = torch.log(pi)
        logdet = torch.logdet(S)
        return tvb.elbo(x, pi, log_pi, eta, S, logdet, self.basis, self.offsets, self.lam, self.log_mix_probs)

    # ------------------------------------------------------------------ TAG inputs and cost
    def tag_inputs(self, x_noisy, z_est, m_est, var=None) -> TagInputs:
        """``δz`` and ``L(m)`` (SPEC §2.3, Tagger eq. 4–5) for group estimates ``z_est`` and
        masks ``m_est`` ``(B, K, N)``.

        Gaussian: ``δz_ik = r_ik (x̃_i − z_ik)/λ_k`` with ``r_ik ∝ m_ik N(x̃_i; z_ik, λ_k)`` —
        the gradient of ``log Σ_h m_ih N(x̃_i; z_ih, λ_h)`` w.r.t. ``z_ik`` — and
        ``L(m)_ik = softmax_k log N(x̃_i; z_ik, λ_k)``. ``var`` replaces ``λ`` in both
        (e.g. ``λ_k + v_ik``): a scalar, a ``(K,)`` per-group vector, or anything
        broadcastable to ``(B, K, N)`` with ``K`` in dim −2. Bernoulli (``z_est`` the groups'
        probabilities of a clean 1): ``ξ_k = z_k(1 − 2β) + β``,
        ``δz_k = m_k / (Σ_h ξ_h m_h − 1 + x̃)``, ``L(m)_k ∝ ξ_k^x̃ (1 − ξ_k)^(1−x̃)``."""
        x = self.check_x_noisy(x_noisy)
        B = x.shape[0]
        z_est = self._check_groups(z_est, B, "z_est")
        m_est = self._check_groups(m_est, B, "m_est")
        if self.likelihood == "bernoulli":
            if var is not None:
                raise ValueError("var applies only to likelihood='gaussian'")
            return TagInputs(delta_z=tvb.binary_mean_gradient(x, z_est, m_est, self.flip_prob),
                             mask_likelihood=tvb.binary_mask_likelihood(x, z_est, self.flip_prob))
        lam = self._variance(var)
        return TagInputs(delta_z=tvb.mean_gradient(x, z_est, m_est, lam),
                         mask_likelihood=tvb.mask_likelihood(x, z_est, lam))

    def _variance(self, var) -> torch.Tensor:
        if var is None:
            return self.lam.unsqueeze(-1)
        var = var.to(dtype=self.dtype, device=self.device) if isinstance(var, torch.Tensor) else \
            V.as_tensor(var, "var", self.dtype, self.device)
        if var.dim() == 1 and var.shape[0] == self.num_groups:
            var = var.unsqueeze(-1)
        if not bool((torch.isfinite(var) & (var > 0)).all()):
            raise ValueError("var must be positive and finite")
        try:
            torch.broadcast_shapes(var.shape, (1, self.num_groups, self.num_pixels))
        except RuntimeError:
            raise ValueError(f"var has shape {V._shape(var)}, not broadcastable to "
                             f"(B, K, N) = (B, {self.num_groups}, {self.num_pixels})") from None
        return var

    def grouping_cost(self, x, pi, m, v=None) -> torch.Tensor:
        """Slides' cost of a grouping estimate ``(B,)`` (SPEC §2.3) against the clean ``x``:
        gaussian ``−Σ_i log Σ_k π_ik N(x_i; m_ik, σ_k² + v_ik)`` (``v=None``: 0); bernoulli
        ``−Σ_i log Σ_k π_ik m_ik^x_i (1 − m_ik)^(1−x_i)`` with ``m`` the groups' probabilities
        of a 1 (``v`` must be None there)."""
        x = V.check_x_noisy(x, self.num_pixels, self.dtype, self.device, "x")
        B = x.shape[0]
        pi, m = self._check_groups(pi, B, "pi"), self._check_groups(m, B, "m")
        if self.likelihood == "bernoulli":
            if v is not None:
                raise ValueError("v applies only to likelihood='gaussian' (binary m are probabilities)")
            return tvb.binary_grouping_cost(x, pi, m)
        v = torch.zeros_like(m) if v is None else self._check_groups(v, B, "v")
        return tvb.grouping_cost(x, pi, m, v, self.group_vars)

    # ------------------------------------------------------------------ gold standards
    def gold_standard(self, x_noisy, num_samples: int, warmup: int, seed: int = 0, **kwargs) -> GoldStandard:
        """NUTS over ``h`` with ``z`` enumerated: ``num_chains`` (default 4) chains, each over the
        whole batch, relabelled to one labelling of the groups and checked by split-r̂ across
        chains; see :func:`tagger_gold.nuts_gold_standard` for the options and
        :class:`~explicit_models.tagger_gold.GoldStandard` for the returned fields."""
        return tagger_gold.nuts_gold_standard(self, self.check_x_noisy(x_noisy), num_samples, warmup, seed,
                                              **kwargs)

    def exact_assignment_posterior(self, x_noisy, max_assignments: int = 2 ** 16, **kwargs) -> torch.Tensor:
        """``p(z_i = k | x̃)`` ``(B, K, N)`` by enumerating all ``K^N`` assignments; see
        :func:`tagger_gold.exact_enumeration`."""
        return tagger_gold.exact_enumeration(self, self.check_x_noisy(x_noisy), max_assignments, **kwargs)[0]

    def exact_log_evidence(self, x_noisy, max_assignments: int = 2 ** 16, **kwargs) -> torch.Tensor:
        """``log p(x̃)`` ``(B,)`` by enumerating all ``K^N`` assignments (see
        :func:`tagger_gold.exact_enumeration`)."""
        return tagger_gold.exact_enumeration(self, self.check_x_noisy(x_noisy), max_assignments, **kwargs)[1]
