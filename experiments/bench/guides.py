"""The amortised guides scored against the exact posterior (issue 17 items 1–2; SPEC §3.5, §4).

On the embedded static models (``linear``, ``classes``; widths 64-32-16), per example on
``--eval`` fresh samples: KL(q ‖ p) in closed form and the ELBO gap of the ladder guide, the
mean-field encoder guide (both trained with Pyro SVI on fresh samples), mean-field VB at its
fixed point (full covariance within a level), and — linear model, on ``--svi-examples``
examples — per-example SVI with ``AutoNormal`` and ``AutoMultivariateNormal``; importance-sampled
log evidence with each guide as proposal (bias, ESS). Writes ``--out`` (JSON) and prints a table.

    python -m experiments.bench.guides --out docs/results/guides.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from explicit_models.static_divergence import from_vb
from explicit_models.static_svi import fit_one
from learned_inference.guide_training import fit_guide
from learned_inference.guides import LadderGuide, MeanFieldEncoderGuide
from pgm_ladder.harness.inference import score_approximation, score_importance

from .common import command, machine, scaled_model

GUIDES = {"ladder": LadderGuide, "mean_field_encoder": MeanFieldEncoderGuide}


def add_training_arguments(p: argparse.ArgumentParser, steps: int, batch_size: int, lr: float, out: str) -> None:
    """What every guide measurement takes: SVI steps, batch, learning rate, evaluation set,
    importance-sampling particles, seed and the results file (defaults as given)."""
    p.add_argument("--steps", type=int, default=steps, help=f"SVI steps per guide (default {steps})")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"fresh model samples per SVI step (default {batch_size})")
    p.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate, decayed 100-fold (default {lr})")
    p.add_argument("--eval", type=int, default=500, help="fresh evaluation samples (default 500)")
    p.add_argument("--particles", type=int, default=1000, help="importance-sampling particles (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples and the training (default 0)")
    p.add_argument("--out", type=Path, default=Path(out), help=f"results JSON (default {out})")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", default=["linear", "classes"], choices=["linear", "classes"], help="static models to fit guides to (default: linear classes)")
    p.add_argument("--mixture-steps", type=int, default=300, help="SVI steps per guide, classes model")
    p.add_argument("--svi-examples", type=int, default=3, help="examples fitted by per-example SVI (default 3)")
    p.add_argument("--svi-steps", type=int, default=3000, help="SVI steps per example (default 3000)")
    add_training_arguments(p, steps=600, batch_size=256, lr=0.01, out="docs/results/guides.json")


def start_record(args, **sections) -> dict:
    """The results record of a measurement: command, settings, the machine at the start."""
    return {"command": " ".join(sys.argv), "settings": {k: str(v) for k, v in vars(args).items() if k != "func"},
            "machine_start": machine(), **sections}


def write_record(results: dict, out: Path, table_text: str) -> int:
    """Add the machine at the end, write ``out`` (JSON) and print the table."""
    results["machine_end"] = machine()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(table_text)
    print(f"wrote {out}")
    return 0


def score_model(name: str, args) -> dict:
    model = scaled_model(name, 64)
    x = model.sample(args.eval, torch.Generator().manual_seed(20171204 + args.seed)).x_noisy
    out = {}
    start = time.perf_counter()
    fp = model.vb_fixed_point(x)
    out["vb_fixed_point"] = score_approximation(model, x, from_vb(model, fp.means, fp.covs, fp.class_probs))
    out["vb_fixed_point"].update(sweeps=fp.sweeps, converged=fp.converged, stalled=fp.stalled,
                                 wall_s=time.perf_counter() - start)
    steps = args.mixture_steps if model.has_mixture_top else args.steps
    for key, make in GUIDES.items():
        guide = make(model)
        fit = fit_guide(model, guide, steps, args.batch_size, args.lr, seed=args.seed)
        with torch.no_grad():
            out[key] = score_approximation(model, x, guide.approximation(x))
        out[key].update(train_steps=steps, train_wall_s=fit.wall_s, final_loss=sum(fit.losses[-20:]) / 20)
        n_is = min(args.eval, 200)
        out[key]["importance"] = score_importance(model, guide, x[:n_is], args.particles)
        print(f"{name} {key}: {out[key]}", flush=True)
    if not model.has_mixture_top:
        for kind in ("normal", "mvn"):
            fits = [fit_one(model, x[i:i + 1], kind, max_steps=args.svi_steps, seed=args.seed)
                    for i in range(args.svi_examples)]
            kls = [f.kl for f in fits]
            out[f"svi_auto_{kind}"] = {"kl": sum(kls) / len(kls), "kl_each": kls, "steps": args.svi_steps,
                                       "wall_s_each": [f.wall_s for f in fits], "examples": len(fits)}
            print(f"{name} svi {kind}: {out[f'svi_auto_{kind}']}", flush=True)
    return out


def table(results: dict) -> str:
    lines = ["| model | method | mean KL(q‖p) nats | ELBO gap | IS |log p̂ − log p| (mean) | IS bias | ESS mean / min |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, rows in results["models"].items():
        for method, r in rows.items():
            imp = r.get("importance")
            is_cols = (f"{imp['abs_error_mean']:.4f} | {imp['bias']:+.4f} | {imp['ess_mean']:.0f} / {imp['ess_min']:.0f}"
                       if imp else "– | – | –")
            gap = f"{r['elbo_gap']:.4f}" if "elbo_gap" in r else "–"
            lines.append(f"| {name} | {method} | {r['kl']:.4f} | {gap} | {is_cols} |")
    return "\n".join(lines)


def run(args) -> int:
    torch.manual_seed(args.seed)
    results = start_record(args, models={})
    for name in args.models:
        results["models"][name] = score_model(name, args)
    return write_record(results, args.out, table(results))


#: ``register(subparsers)`` adds ``guides`` to a CLI; ``main(argv)`` runs it
register, main = command("guides", "amortised guides vs the exact posterior", __doc__, add_arguments, run)


if __name__ == "__main__":
    sys.exit(main())
