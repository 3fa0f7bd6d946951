"""Amortised guides of the temporal hierarchy scored against the exact trajectory posterior
(issue 17 items 1–2, temporal part; SPEC §2.2, §3.5, §4).

On the ``temporal`` experiment's embedded model (widths 8-4-2) with its occlusion
(``TemporalTask``'s default, 30 % of the entries hidden) over 10 frames (the experiment's 20
with ``--frames 20``: twice the training time, dense posteriors of 294 dimensions), per sequence on
``--eval`` fresh sequences: KL(q ‖ p(s_0:T | x̃)) in closed form and the ELBO gap of the
ladder guide and the mean-field encoder guide (both trained with Pyro SVI on fresh
sequences) and of mean-field VB (the smoother at its fixed point, full and diagonal
covariance per latent); importance-sampled log evidence with each guide as proposal on the
first ``--is-sequences`` of them (bias, ESS). Writes ``--out`` (JSON) and prints a table.

    python -m experiments.bench.temporal_guides --out docs/results/guides_temporal.json
"""
from __future__ import annotations

import argparse
import sys
import time
import types

import torch

from experiments.temporal.experiment import TemporalTask, embedded_model
from explicit_models.temporal_divergence import from_vb_smoother, trajectory_posterior
from explicit_models.temporal_svi import fit_sequence
from learned_inference.guide_training import fit_guide
from learned_inference.temporal_guides import TemporalLadderGuide, TemporalMeanFieldGuide
from pgm_ladder.harness.inference import score_importance

from .common import command
from .guides import add_training_arguments, start_record, write_record

GUIDES = {"ladder": TemporalLadderGuide, "mean_field_encoder": TemporalMeanFieldGuide}
CHUNK = 50  # sequences scored at a time: the dense (B, D, D) posteriors, D = (T+1) N


class PackedSequences:
    """The temporal model seen through one ``(B, 2 T n_0)`` tensor holding ``x̃`` and the
    visibility side by side, so that the static harness' importance sampler
    (:func:`pgm_ladder.harness.inference.score_importance`, which repeats a 2-D batch of
    particles) applies to the temporal model and its guides unchanged."""

    def __init__(self, model, steps: int):
        self.model, self.steps, self.n0 = model, int(steps), model.widths[0]

    def pack(self, x, o) -> torch.Tensor:
        return torch.cat([x.reshape(x.shape[0], -1), o.to(x.dtype).reshape(x.shape[0], -1)], -1)

    def unpack(self, packed):
        x, o = packed.reshape(packed.shape[0], 2, self.steps, self.n0).unbind(1)
        return x, o

    def check_x_noisy(self, packed) -> torch.Tensor:
        if packed.dim() != 2 or packed.shape[1] != 2 * self.steps * self.n0:
            raise ValueError(f"packed sequences: expected shape (B, {2 * self.steps * self.n0}), "
                             f"got {tuple(packed.shape)}")
        return packed

    def pyro_model(self, packed):
        return self.model.pyro_model(*self.unpack(packed))

    def guide(self, guide):
        return lambda packed: guide(*self.unpack(packed))

    def exact_posterior(self, packed, return_covs=False):
        return types.SimpleNamespace(log_evidence=self.model.kalman_filter(*self.unpack(packed)).log_likelihood)


def add_arguments(p: argparse.ArgumentParser) -> None:
    task = TemporalTask()
    p.add_argument("--frames", type=int, default=10, help=f"frames per sequence (default 10; the experiment's {task.frames})")
    p.add_argument("--occlusion", type=float, default=task.occlusion, help=f"hidden fraction (default {task.occlusion})")
    p.add_argument("--hidden", type=int, default=64, help="GRU width of the mean-field encoder (default 64)")
    p.add_argument("--is-sequences", type=int, default=200, help="sequences scored by importance sampling (default 200)")
    p.add_argument("--svi-sequences", type=int, default=3,
                   help="sequences fitted by per-sequence AutoNormal / AutoMultivariateNormal SVI (default 3; 0: none)")
    p.add_argument("--svi-steps", type=int, default=3000, help="SVI steps per sequence (default 3000)")
    add_training_arguments(p, steps=400, batch_size=256, lr=0.03, out="docs/results/guides_temporal.json")


def _summary(kl: torch.Tensor, gap: torch.Tensor) -> dict:
    return {"kl": float(kl.mean()), "kl_max": float(kl.max()), "elbo_gap": float(gap.mean()),
            "max_abs_gap_minus_kl": float((gap - kl).abs().max()), "examples": int(kl.shape[0])}


def score(model, x, o, approximate) -> dict:
    """KL and ELBO gap per sequence of ``approximate(i, j)`` (a ``TrajectoryApproximation`` of
    sequences ``i:j``), in chunks of :data:`CHUNK` sequences."""
    kls, gaps = [], []
    with torch.no_grad():
        for i in range(0, x.shape[0], CHUNK):
            xc, oc = x[i:i + CHUNK], o[i:i + CHUNK]
            exact, q = trajectory_posterior(model, xc, oc), approximate(i, i + CHUNK)
            kls.append(q.kl(model, xc, oc, exact=exact))
            gaps.append(exact.log_evidence - q.elbo(model, xc, oc))
    return _summary(torch.cat(kls), torch.cat(gaps))


def vb_rows(vb, i: int, j: int):
    """Sequences ``i:j`` of a ``VBSmootherResult`` (covariances shared by the batch stay shared)."""
    rows = lambda v: v if v.shape[0] == 1 else v[i:j]  # noqa: E731
    return types.SimpleNamespace(means=[m[i:j] for m in vb.means], covs=[rows(V) for V in vb.covs],
                                 covariance=vb.covariance)


def importance(model, guide, x, o, particles: int) -> dict:
    """:func:`score_importance` on chunks of sequences (memory: ``100 · chunk`` particles at a
    time), merged: means weighted by the chunk sizes, extremes over all."""
    packed = PackedSequences(model, x.shape[1])
    parts = [score_importance(packed, packed.guide(guide), packed.pack(x[i:i + 10], o[i:i + 10]), particles)
             for i in range(0, x.shape[0], 10)]
    n = sum(p["examples"] for p in parts)
    mean = lambda k: sum(p[k] * p["examples"] for p in parts) / n  # noqa: E731
    return {"bias": mean("bias"), "abs_error_mean": mean("abs_error_mean"),
            "abs_error_max": max(p["abs_error_max"] for p in parts), "ess_mean": mean("ess_mean"),
            "ess_min": min(p["ess_min"] for p in parts), "num_particles": particles, "examples": n}


def run(args) -> int:
    for name in ("frames", "steps", "batch_size", "eval", "is_sequences", "particles"):
        if getattr(args, name) < (2 if name == "frames" else 1):
            raise ValueError(f"--{name.replace('_', '-')} is too small: {getattr(args, name)}")
    if not 0 <= args.svi_sequences <= args.eval or args.svi_steps < 1:
        raise ValueError(f"--svi-sequences must lie in [0, --eval] and --svi-steps be >= 1, got "
                         f"{args.svi_sequences}, {args.svi_steps}")
    if not 0.0 <= args.occlusion < 1.0:
        raise ValueError(f"--occlusion must lie in [0, 1), got {args.occlusion}")
    torch.manual_seed(args.seed)
    model, T, vis = embedded_model("default"), args.frames, 1.0 - args.occlusion
    results = start_record(args, methods={})
    s = model.sample(args.eval, T, torch.Generator().manual_seed(20171204 + args.seed), visibility=vis)
    x, o = model.check_inputs(s.x_noisy, s.visibility)
    out = results["methods"]
    for cov in ("full", "diagonal"):
        start = time.perf_counter()
        vb = model.vb_smoother_fixed_point(x, o, covariance=cov)
        wall = time.perf_counter() - start
        out[f"vb_{cov}"] = score(model, x, o, lambda i, j: from_vb_smoother(vb_rows(vb, i, j)))
        out[f"vb_{cov}"].update(converged=bool(vb.converged), sweeps=vb.sweeps, step=vb.step, wall_s=wall)
        print(f"vb {cov}: {out[f'vb_{cov}']}", flush=True)

    def draw(generator, n):
        batch = model.sample(n, T, generator=generator, visibility=vis)
        return batch.x_noisy, batch.visibility

    for key, make in GUIDES.items():
        guide = make(model, hidden=args.hidden) if key == "mean_field_encoder" else make(model)
        fit = fit_guide(model, guide, args.steps, args.batch_size, args.lr, seed=args.seed, draw=draw)
        out[key] = score(model, x, o, lambda i, j: guide.approximation(x[i:j], o[i:j]))
        out[key].update(train_steps=args.steps, train_wall_s=fit.wall_s, final_loss=sum(fit.losses[-20:]) / 20,
                        importance=importance(model, guide, x[:args.is_sequences], o[:args.is_sequences],
                                              args.particles))
        print(f"{key}: {out[key]}", flush=True)
        if key == "ladder" and args.svi_sequences:
            n = args.svi_sequences
            with torch.no_grad():
                ladder_kl = guide.approximation(x[:n], o[:n]).kl(model, x[:n], o[:n])
    for kind in ("normal", "mvn") if args.svi_sequences else ():
        out[f"svi_auto_{kind}"] = per_sequence_svi(model, x, o, kind, args, ladder_kl)
        print(f"svi {kind}: {out[f'svi_auto_{kind}']}", flush=True)
    return write_record(results, args.out, table(results))


def per_sequence_svi(model, x, o, kind: str, args, ladder_kl: torch.Tensor) -> dict:
    """Per-sequence autoguide SVI (``--svi-steps`` each, Adam lr 0.02, 8 particles) on the first
    ``--svi-sequences`` evaluation sequences, beside the ladder guide's KL on the same ones."""
    fits = [fit_sequence(model, x[i:i + 1], o[i:i + 1], kind, max_steps=args.svi_steps, seed=args.seed)
            for i in range(args.svi_sequences)]
    kls = [f.kl for f in fits]
    return {"kl": sum(kls) / len(kls), "kl_max": max(kls), "kl_each": kls, "steps": args.svi_steps,
            "wall_s_each": [f.wall_s for f in fits], "examples": len(fits),
            "ladder_kl_same_sequences": [float(v) for v in ladder_kl]}


def table(results: dict) -> str:
    lines = ["| method | mean KL(q‖p) nats | max KL | ELBO gap | IS mean abs(log p̂ − log p) | IS bias | "
             "ESS mean / min | training |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method, r in results["methods"].items():
        imp = r.get("importance")
        is_cols = (f"{imp['abs_error_mean']:.4f} (max {imp['abs_error_max']:.3f}) | {imp['bias']:+.4f} | "
                   f"{imp['ess_mean']:.0f} / {imp['ess_min']:.0f}" if imp else "– | – | –")
        train = f"{r['train_wall_s']:.0f} s ({r['train_steps']} steps)" if "train_wall_s" in r else "–"
        if "wall_s_each" in r:  # per-sequence SVI: no ELBO gap column, its cost per sequence
            train = f"{min(r['wall_s_each']):.0f}–{max(r['wall_s_each']):.0f} s / sequence ({r['steps']} steps)"
            method = f"{method} ({r['examples']} sequences)"
        gap = f"{r['elbo_gap']:.4f}" if "elbo_gap" in r else "–"
        lines.append(f"| {method} | {r['kl']:.4f} | {r['kl_max']:.3f} | {gap} | {is_cols} | {train} |")
    return "\n".join(lines)


#: ``register(subparsers)`` adds ``guides-temporal`` to a CLI; ``main(argv)`` runs it
register, main = command("guides-temporal", "amortised guides of the temporal hierarchy vs the exact posterior",
                         __doc__, add_arguments, run)


if __name__ == "__main__":
    sys.exit(main())
