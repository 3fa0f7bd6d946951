"""``pgm-ladder check mixture``: do Tagger and RTagger learn the iterative grouping inference
of the perceptual-grouping mixture they implicitly assume? (SPEC §2.3, §3.3, §4)

Trains Tagger (TAG + Ladder) and RTagger (TAG + RLadder) with the shared trainer (the
``mixture`` experiment, one run directory each under ``--out``) on samples of the embedded
Tagger mixture (12×12 images, 3 overlapping random textures). Then, on the same fresh
images, scores per iteration the grouping AMI against the true assignments (SPEC §4; every
pixel counts, the true assignments being one-hot) and the denoising cost of:

* Tagger and RTagger after iterations 1..T;
* VB (SPEC §2.3, ``q(h)`` then ``q(z)`` per iteration) after the same number of iterations,
  from the same kind of random mask initialisation as TAG (``π₀ = softmax(N(0, 1))``);
* VB run to convergence;
* the gold standard: NUTS over the appearances with the assignments enumerated,
  ``E_h[p(z_i = k | h, x̃_i)]``, on the first ``task.gold_images`` images.

Denoising costs are nats per pixel of the clean ``x`` under each method's predictive
distribution given ``x̃`` — engines: TAG's ``−log Σ_k m_k N(x; z_k, v)``; VB: its exact
predictive ``q(x | x̃)``; gold: the posterior predictive averaged over the NUTS draws
(``explicit_models.tagger_predictive``) — plus the MSE of each method's denoised image.
VB's slides' cost ``−log Σ_k π_k N(x; m_k, σ_k² + v_k)`` (the prior predictive of the
assigned group, far larger) is in ``results.json`` as ``grouping_cost``.
Writes ``OUT/results.json`` and ``OUT/groupings.png`` and prints the table. Re-running with
the same ``--out`` reuses finished engine runs and resumes interrupted ones.
"""
from __future__ import annotations

import time

import torch

from explicit_models.tagger_predictive import sampled_predictive_cost, vb_predictive_cost
from pgm_ladder import formatting, metrics
from pgm_ladder import checks as common
from pgm_ladder.harness import grouping as harness
from pgm_ladder.atomic_io import write_json_atomic
from pgm_ladder.training.config import config_to_dict
from pgm_ladder.training.provenance import provenance

from . import experiment as exp

LABELS = {"tagger": "Tagger", "rtagger": "RTagger", "vb": "VB (same iters)"}


def register(subparsers, spec) -> None:
    """Add ``check mixture`` for experiment ``spec`` to ``subparsers``."""
    p = common.add_check_parser(subparsers, "mixture", ("Tagger and RTagger vs VB and the "
                                "NUTS gold standard on the embedded perceptual-grouping mixture"),
                                __doc__, exp.PRESETS, 8, threads=True)
    p.set_defaults(func=run, spec=spec)


def vb_state_scores(model, data: harness.GroupingEvalSet, pi, m, v) -> dict:
    """AMI/ARI, predictive cost, plug-in MSE and the slides' grouping cost of one VB state."""
    s = metrics.grouping_scores(data.z, pi)
    n = data.x.shape[1]
    cost = vb_predictive_cost(data.x, data.x_noisy, pi, m, v, model.group_vars, model.noise_std ** 2)
    return {"ami": s["ami"], "ari": s["ari"], "cost": float(cost.mean()) / n,
            "mse": harness.mse_per_pixel(model.clean_mean(data.x_noisy, pi, m), data.x),
            "grouping_cost": float(model.grouping_cost(data.x, pi, m, v).mean()) / n}


def vb_scores(model, data: harness.GroupingEvalSet, iterations: int, max_iters: int) -> tuple[dict, dict, dict]:
    """VB after 1..``iterations`` and at convergence from TAG-like random masks:
    ``(per-iteration scores, converged scores, what the figure shows)``."""
    gen = torch.Generator().manual_seed(data.init_seed)
    res = model.vb(data.x_noisy, iterations, init="random", generator=gen)
    states = [vb_state_scores(model, data, res.pi[t], res.m[t], res.v[t]) for t in range(iterations)]
    per_iter = {key: [s[key] for s in states] for key in states[0]}
    gen = torch.Generator().manual_seed(data.init_seed)
    conv = model.vb_converged(data.x_noisy, max_iters=max_iters, init="random", generator=gen)
    converged = vb_state_scores(model, data, conv.pi, conv.m, conv.v)
    converged.update(iterations_used=int(conv.iterations), max_iters=max_iters,
                     converged_fraction=float(conv.converged.double().mean()))
    return per_iter, converged, {"vb": res.pi[-1], "vb_converged": conv.pi}


def gold_scores(model, data: harness.GroupingEvalSet, task: exp.MixtureTask, seed: int) -> tuple[dict, torch.Tensor]:
    """The NUTS gold standard on the first ``task.gold_images`` images (4 chains, relabelled to
    one labelling of the groups; its convergence diagnostics — split-r̂ on ``h`` and on the
    log likelihood, the worst images — go into the scores)."""
    n = min(task.gold_images, data.size)
    x, xn = data.x[:n], data.x_noisy[:n]
    gold = model.gold_standard(xn, num_samples=task.gold_samples, warmup=task.gold_warmup, seed=seed)
    s = metrics.grouping_scores(data.z[:n], gold.assign_probs)
    cost = []
    for b in range(0, n, 10):  # 10 images at a time: the draws' (C·S, images, K, N) tensors are large
        h, xb, xnb = gold.samples[:, b:b + 10], x[b:b + 10], xn[b:b + 10]
        cost.append(sampled_predictive_cost(xb, xnb, model.assignment_probs_given_h(xnb, h), model.group_means(h),
                                            model.group_vars, model.noise_std ** 2))
    cost = torch.cat(cost)
    out = {"ami": s["ami"], "ari": s["ari"], "cost": float(cost.mean()) / x.shape[1],
           "mse": harness.mse_per_pixel(gold.denoised, x), "images": n, "warmup": task.gold_warmup,
           "samples": task.gold_samples, "wall_time_s": gold.wall_s}
    out.update({k: v for k, v in gold.diagnostics.items() if isinstance(v, (int, float, str))
                or (isinstance(v, list) and all(isinstance(e, (int, float)) for e in v))})
    return out, gold.assign_probs


def subset_ami(data: harness.GroupingEvalSet, probs: torch.Tensor, n: int) -> float:
    return metrics.grouping_scores(data.z[:n], probs[:n])["ami"]


def table(scores: dict, iterations: int) -> str:
    """Per iteration, each method's AMI, cost and MSE; then VB at convergence and the gold
    standard, each in its own row under their own AMI, cost and MSE columns."""
    methods = [m for m in LABELS if m in scores]
    keys = ("ami", "cost", "mse")
    rows = [[t + 1] + [scores[m][key][t] for key in keys for m in methods] for t in range(iterations)]
    head = ["iteration"] + [f"{key} {LABELS[m]}" for key in ("AMI", "cost", "MSE") for m in methods]
    final = [[label] + [scores[name][key] for key in keys]
             for name, label in (("vb_converged", "VB converged"), ("gold", "gold (NUTS)"))]
    return ("Grouping AMI against the true assignments (higher is better); denoising cost −log p(x | x̃) "
            "(nats/pixel) and MSE per pixel of the clean x (lower is better)\n" + formatting.text_table(head, rows)
            + "\n\n" + formatting.text_table(["reference", "AMI", "cost", "MSE"], final))


def targets(scores: dict, iterations: int) -> list[tuple[str, str, bool]]:
    """The targets this check reports on, as ``(key, what was measured against what, met)``:
    after the ``iterations`` it was trained with, the RTagger at least as good as VB after
    as many and the Tagger at AMI ≥ 0.5; the RTagger run for all scored iterations at least
    as good as VB at convergence and within 0.05 AMI of the gold standard; the RTagger's AMI
    rising over the trained iterations."""
    t = iterations - 1
    r, vb, gold = scores["rtagger"]["ami"], scores["vb"]["ami"], scores["gold"]
    tagger, converged = scores["tagger"]["ami"][t], scores["vb_converged"]["ami"]
    near = gold["rtagger_ami_same_images"]
    return [("rtagger_ge_vb_same_iters", f"RTagger AMI {r[t]:.4f} vs VB {vb[t]:.4f} after {iterations} iterations",
             r[t] >= vb[t]),
            ("tagger_ge_0.5", f"Tagger AMI {tagger:.4f} after {iterations} iterations vs 0.5", tagger >= 0.5),
            (f"rtagger_{len(r)}_iters_ge_vb_converged",
             f"RTagger AMI {r[-1]:.4f} after {len(r)} iterations vs VB converged {converged:.4f}", r[-1] >= converged),
            ("rtagger_within_0.05_of_gold", f"RTagger AMI {near:.4f} vs gold {gold['ami']:.4f} on the gold images "
             "(within 0.05)", abs(near - gold["ami"]) <= 0.05),
            ("rtagger_ami_increasing", f"RTagger AMI over iterations 1-{iterations} rising: "
             + ", ".join(f"{a:.4f}" for a in r[:t + 1]), all(b > a for a, b in zip(r[:t + 1], r[1:t + 1])))]


def acceptance(scores: dict, iterations: int) -> dict:
    """:func:`targets` as ``{key: met}`` (``results.json``'s ``acceptance``)."""
    return {key: met for key, _, met in targets(scores, iterations)}


@common.with_threads
def run(args) -> int:
    start = time.time()
    model = common.explicit_model(args.spec, args)
    trained = common.train_engines(args.spec, args, {e: common.engine_overrides(args, e) for e in exp.ENGINES})
    config = trained["rtagger"][0]
    task = config.task
    device = next(trained["rtagger"][1].model.parameters()).device
    data = exp.eval_set(model, task)
    print(f"explicit model: {model}" + (f" from {args.model_file}" if args.model_file is not None else "")
          + f"; {data.size} fresh images")
    scores, shown = {}, {}
    for name, (_, res) in trained.items():
        scores[name], shown[name] = harness.score_groupings(res.model, data, task.scored_iterations, device)
    scores["vb"], scores["vb_converged"], vb_shown = vb_scores(model, data, task.scored_iterations,
                                                               task.vb_max_iters)
    shown.update(vb_shown)
    scores["gold"], shown["gold"] = gold_scores(model, data, task, args.seed)
    n_gold = scores["gold"]["images"]
    for name in ("tagger", "rtagger", "vb", "vb_converged"):
        scores["gold"][f"{name}_ami_same_images"] = subset_ami(data, shown[name], n_gold)
    print()
    print(table(scores, task.scored_iterations))
    print(f"on the {n_gold} gold-standard images: " + ", ".join(
        f"{k} {scores['gold'][f'{k}_ami_same_images']:.4f}" for k in ("tagger", "rtagger", "vb", "vb_converged"))
        + f", gold {scores['gold']['ami']:.4f}")
    payload = dict(scores)
    payload["acceptance"] = acceptance(scores, task.iterations)
    payload["settings"] = {
        **exp.EMBEDDED_MODELS.settings(task), "preset": args.preset,
        "seed": args.seed, "iterations": task.iterations, "scored_iterations": task.scored_iterations,
        "eval_images": data.size,
        "torch_threads": torch.get_num_threads(),
        "engines": {name: {"run_dir": str(res.run_dir), "steps": res.step, "config": config_to_dict(cfg)}
                    for name, (cfg, res) in trained.items()},
    }
    payload["wall_time_s"] = time.time() - start
    payload.update(provenance(device))
    write_json_atomic(args.out / "results.json", payload)
    from .figures import plot_groupings

    plot_groupings(data, shown, args.out / "groupings.png",
                   title=f"check mixture — preset {args.preset}, seed {args.seed}")
    print("\nTargets (measured and reported, not enforced: the exit status says the check ran, not that a "
          "target was met):")
    for _, measured, met in targets(scores, task.iterations):
        print(f"  {measured}: {'met' if met else 'not met'}")
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'groupings.png'} ({payload['wall_time_s']:.0f} s)")
    return 0
