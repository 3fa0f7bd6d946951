"""``pgm-ladder bench``: what each way of inference costs on the static hierarchy (issue 17
item 3; SPEC §2.1, §3.5, §4).

For the embedded linear static model scaled to widths ``[w, w/2, w/4]``, ``w`` in
``--widths``: wall time per posterior of

* ``exact`` — the exact posterior (operators built from scratch, then a batch of ``--batch``);
* ``ladder`` / ``mean_field_encoder`` — the amortised guides (posterior parameters and one
  draw per example, a batch of ``--batch``), after training with Pyro SVI (training time and
  the KL it reached are recorded);
* ``vb`` — plain mean-field VB iterated to a residual of ``--vb-tol`` posterior stds (or
  ``--vb-max-sweeps``), on ``--vb-examples`` examples;
* ``svi_mvn`` — per-example SVI (``AutoMultivariateNormal``) run until its KL is at most the
  ladder guide's, or ``--svi-max-s`` seconds (then it is a lower bound), on one example;
* ``nuts`` — NUTS (``--nuts-draws`` warm-up and as many draws) on one example, widths up to
  ``--nuts-max-width``;

the batched methods on 1 and 2 threads, the per-example ones on 1. Writes ``OUT/bench.json``,
``OUT/bench.png`` (log-log cost against width) and ``OUT/bench.md``.

    python -m experiments.bench.bench --out docs/results
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from pyro import poutine

from explicit_models.static_divergence import from_vb
from explicit_models.static_svi import fit_one, nuts_one
from learned_inference.guide_training import fit_guide
from learned_inference.guides import LadderGuide, MeanFieldEncoderGuide
from pgm_ladder.harness.inference import score_approximation

from .common import command, machine, scaled_model

GUIDES = {"ladder": LadderGuide, "mean_field_encoder": MeanFieldEncoderGuide}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512, 1024], help="widths of the embedded static model (three levels w, w/2, w/4; default 64 .. 1024)")
    p.add_argument("--batch", type=int, default=10000, help="posteriors per timed batch (default 10000)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to time each method with (default 1 2)")
    p.add_argument("--train-steps", type=int, default=300, help="SVI steps per amortised guide and width (default 300)")
    p.add_argument("--train-batch", type=int, default=128, help="fresh model samples per guide SVI step (default 128)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate of the guides' SVI (default 0.01)")
    p.add_argument("--eval", type=int, default=200, help="examples the KL is measured on")
    p.add_argument("--vb-examples", type=int, default=100, help="examples VB is timed on (default 100)")
    p.add_argument("--vb-tol", type=float, default=1e-4, help="VB's convergence tolerance (default 1e-4)")
    p.add_argument("--vb-max-sweeps", type=int, default=1000, help="VB's sweep cap (default 1000)")
    p.add_argument("--svi-max-s", type=float, default=60.0, help="seconds per-example SVI may run to reach the guide's KL (default 60)")
    p.add_argument("--nuts-draws", type=int, default=50, help="NUTS draws per chain (default 50)")
    p.add_argument("--nuts-max-width", type=int, default=256, help="widest model NUTS is run on (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model samples and the training (default 0)")
    p.add_argument("--out", type=Path, default=Path("docs/results"), help="folder for bench.json, bench.md and bench.png (default docs/results)")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_width(width: int, args) -> dict:
    model = scaled_model("linear", width)
    gen = torch.Generator().manual_seed(args.seed + width)
    x = model.sample(args.batch, generator=gen).x_noisy
    x_eval = x[:args.eval]
    row = {"width": width, "widths": model.widths, "methods": {}}
    guides = {}
    for key, make in GUIDES.items():
        guide = make(model)
        fit = fit_guide(model, guide, args.train_steps, args.train_batch, args.lr, seed=args.seed)
        with torch.no_grad():
            kl = score_approximation(model, x_eval, guide.approximation(x_eval))["kl"]
        guides[key] = guide
        row["methods"][key] = {"kl": kl, "train_s": fit.wall_s, "train_steps": fit.steps}
    for threads in args.threads:
        torch.set_num_threads(threads)
        model._cache.clear()
        t = _timed(lambda: model.exact_posterior(x, return_covs=False))
        row["methods"].setdefault("exact", {"kl": 0.0})[f"s_per_posterior_{threads}t"] = t / args.batch
        for key, guide in guides.items():
            with torch.no_grad():
                t = _timed(lambda: poutine.trace(guide).get_trace(x))
            row["methods"][key][f"s_per_posterior_{threads}t"] = t / args.batch
        xv = x[:args.vb_examples]
        fp = {}
        t = _timed(lambda: fp.setdefault("vb", model.vb_fixed_point(xv, tol=args.vb_tol, acceleration=None,
                                                                    max_sweeps=args.vb_max_sweeps)))
        vb = fp["vb"]
        kl = float(from_vb(model, vb.means, vb.covs).kl(model, xv).mean())
        row["methods"]["vb"] = dict(row["methods"].get("vb", {}), kl=kl, converged=fp["vb"].converged,
                                    sweeps=fp["vb"].sweeps, **{f"s_per_posterior_{threads}t": t / xv.shape[0]})
        print(f"width {width}, {threads} thread(s): {json.dumps(row['methods'])}", flush=True)
    torch.set_num_threads(1)
    target = row["methods"]["ladder"]["kl"]
    fit = fit_one(model, x[:1], "mvn", max_steps=10**9, target_kl=target, max_wall_s=args.svi_max_s,
                  check_every=50, seed=args.seed)
    row["methods"]["svi_mvn"] = {"kl": fit.kl, "target_kl": target, "reached": fit.reached, "steps": fit.steps,
                                 "s_per_posterior_1t": fit.wall_s}
    if width <= args.nuts_max_width:
        _, wall = nuts_one(model, x[:1], args.nuts_draws, args.nuts_draws, seed=args.seed)
        row["methods"]["nuts"] = {"draws": args.nuts_draws, "warmup": args.nuts_draws, "s_per_posterior_1t": wall}
    print(f"width {width}: svi/nuts {json.dumps({k: row['methods'].get(k) for k in ('svi_mvn', 'nuts')})}",
          flush=True)
    return row


def plot(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    methods = sorted({m for r in rows for m in r["methods"]})
    for i, method in enumerate(methods):
        for threads, style in ((1, "-o"), (2, "--s")):
            key = f"s_per_posterior_{threads}t"
            pts = [(r["width"], r["methods"][method][key]) for r in rows
                   if key in r["methods"].get(method, {})]
            if pts:
                w, s = zip(*pts)
                ax.plot(w, s, style, color=f"C{i}", label=f"{method} ({threads} thread{'s' if threads > 1 else ''})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width n_0 of the bottom level (levels n_0, n_0/2, n_0/4)")
    ax.set_ylabel("wall seconds per posterior")
    ax.set_title("Cost of inference on the static hierarchy")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(result: dict) -> str:
    rows = result["rows"]
    start, end = result["machine_start"], result["machine_end"]
    out = ["# Bench: wall time per posterior on the static hierarchy (issue 17 item 3)", "",
           f"Command: `{result['command']}`. Revision {start['revision']} (uncommitted files may differ), "
           f"{start['cpu']}, {start['cpu_count']} cores, torch {start['torch']}, OMP_NUM_THREADS="
           f"{start['OMP_NUM_THREADS']}. Load average (1, 5, 15 min) at start {start['load_average']}, "
           f"at end {end['load_average']}: a shared machine, timings are noisy.", "",
           "![cost against width](bench.png)", "",
           "| width | method | KL (nats) | s / posterior, 1 thread | 2 threads | training s | notes |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        for method, m in r["methods"].items():
            kl = f"{m['kl']:.3g}" if "kl" in m else "–"
            t1 = f"{m['s_per_posterior_1t']:.3g}" if "s_per_posterior_1t" in m else "–"
            t2 = f"{m['s_per_posterior_2t']:.3g}" if "s_per_posterior_2t" in m else "–"
            train = f"{m['train_s']:.1f}" if "train_s" in m else "–"
            notes = ""
            if method == "svi_mvn":
                notes = f"target KL {m['target_kl']:.3g} {'reached' if m['reached'] else 'NOT reached (lower bound)'} after {m['steps']} steps"
            elif method == "vb":
                notes = f"plain VB: converged={m['converged']} after {m['sweeps']} sweeps"
            elif method == "nuts":
                notes = f"{m['warmup']} warm-up + {m['draws']} draws"
            out.append(f"| {r['width']} | {method} | {kl} | {t1} | {t2} | {train} | {notes} |")
    out += ["", "| width | SVI (AutoMVN) s per posterior / ladder s per posterior, 1 thread |", "| --- | --- |"]
    for r in rows:
        m = r["methods"]
        ratio = m["svi_mvn"]["s_per_posterior_1t"] / m["ladder"]["s_per_posterior_1t"]
        out.append(f"| {r['width']} | {ratio:.3g}{'' if m['svi_mvn']['reached'] else ' (lower bound: SVI did not reach the KL)'} |")
    return "\n".join(out)


def run(args) -> int:
    torch.manual_seed(args.seed)
    result = {"command": " ".join(sys.argv), "settings": {k: str(v) for k, v in vars(args).items() if k != "func"},
              "machine_start": machine(), "rows": []}
    for width in args.widths:
        result["rows"].append(bench_width(width, args))
    result["machine_end"] = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=1))
    plot(result["rows"], args.out / "bench.png")
    (args.out / "bench.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0


#: ``register(subparsers)`` adds ``bench`` to a CLI; ``main(argv)`` runs it
register, main = command("bench", "wall time per posterior of every inference method against width", __doc__, add_arguments, run)


if __name__ == "__main__":
    sys.exit(main())
