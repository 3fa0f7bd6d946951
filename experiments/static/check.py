"""``pgm-ladder check static``: the main job (SPEC §4 on the static hierarchy).

Trains a Ladder and an RLadder with the shared trainer (``static`` experiment, one run
directory each under ``--out``), then scores both, VB after the same number of sweeps and
the Wiener filter against the exact posterior on the same fresh samples, per iteration.
Writes ``OUT/results.json`` and ``OUT/curves.png`` and prints the tables.
Re-running with the same ``--out`` reuses finished engine runs and resumes interrupted ones
(a run of another config or seed there is refused, naming the differing fields).
"""
from __future__ import annotations

import argparse
import sys
import time

from pgm_ladder import formatting, harness
from pgm_ladder import checks as common
from pgm_ladder.atomic_io import write_json_atomic
from pgm_ladder.training.config import config_to_dict
from pgm_ladder.training.errors import ConfigError
from pgm_ladder.training.provenance import provenance

from . import experiment as exp

ENGINES = ("ladder", "rladder")


def register(subparsers, spec) -> None:
    """Add ``check static`` for experiment ``spec`` to ``subparsers``."""
    p = common.add_check_parser(subparsers, "static", ("Ladder and RLadder vs the exact "
                                "posterior of the embedded static Gaussian hierarchy"),
                                __doc__, exp.PRESETS, 5)
    p.add_argument("--explicit-model", choices=sorted(exp.EMBEDDED_MODELS), default=None,
                   help="embedded explicit model: classes (a class-mixture top) or linear "
                        "(default: classes; not with --model-file)")
    p.add_argument("--horizon", type=int, default=4, metavar="K",
                   help="also run the trained RLadder for K times its trained iterations and report "
                        "the curve beyond the training horizon (default: 4; 1: off)")
    p.add_argument("--model", choices=["mixture", *sorted(exp.EMBEDDED_MODELS)], dest="deprecated_model",
                   help=argparse.SUPPRESS)  # deprecated spelling of --explicit-model (mixture = classes)
    p.set_defaults(func=run, spec=spec)


def fixed_overrides(args) -> list[str]:
    """The check's own override: the embedded model chosen, unless ``--model-file`` names one."""
    return [] if args.model_file is not None else [f"task.explicit_model={args.explicit_model}"]


def train_engines(args) -> dict:
    fixed = fixed_overrides(args)
    return common.train_engines(args.spec, args, {e: common.engine_overrides(args, e, *fixed) for e in ENGINES})


def score_all(model, engines: dict, config, device, horizon: int = 1) -> tuple[harness.PosteriorEvalSet, dict]:
    """Every method on the same fresh samples; with ``horizon > 1`` also ``rladder_horizon``:
    the trained RLadder run for ``horizon ×`` its trained iterations (issue 15 item 2)."""
    data = harness.posterior_eval_set(model, config.task.eval_samples, config.task.eval_seed)
    scores = {name: harness.score_engine(net, data, config.task.iterations, device)
              for name, net in engines.items()}
    if horizon > 1 and "rladder" in engines:
        scores["rladder_horizon"] = harness.score_engine(
            engines["rladder"], data, horizon * config.task.iterations, device, probes=False)
    sweeps = config.task.iterations
    scores["vb"] = harness.score_vb(model, data, sweeps=sweeps, init="linear")
    scores["vb_prior"] = harness.score_vb(model, data, sweeps=sweeps, init="prior")
    scores["wiener"] = harness.score_wiener(model, data)
    return data, scores


def tables(data: harness.PosteriorEvalSet, scores: dict, iterations: int) -> str:
    at = formatting.at
    methods = ("ladder", "rladder", "vb", "vb_prior")
    rows = [[t + 1] + [at(scores[k].mse_ratio, t) for k in methods]
            + [scores["wiener"].mse_ratio[0]] for t in range(iterations)]
    out = [f"Denoising: MSE / Bayes MSE (Bayes MSE = {data.bayes_mse:.4f} per sample, "
           f"{data.size} fresh samples; 1 is optimal)",
           formatting.text_table(["iteration", "Ladder", "RLadder", "VB", "VB (prior init)", "Wiener"],
                             rows)]
    if data.class_probs is not None:
        rows = [[t + 1] + [at(scores[k].kl, t) for k in methods]
                + [at(scores[k].error_gap, t) for k in methods] for t in range(iterations)]
        out += ["", f"Classification: KL(p(c|x̃) ‖ q(c|x̃)) in nats, and error − Bayes error "
                f"(Bayes error = {data.bayes_error:.4f})",
                formatting.text_table(["iteration", "KL Ladder", "KL RLadder", "KL VB",
                                   "KL VB prior", "gap Ladder", "gap RLadder", "gap VB",
                                   "gap VB prior"], rows)]
    levels = len(data.posterior_means)
    rows = [[name] + [at(scores[name].probe_r2[-1], l) for l in range(levels)]
            for name in ENGINES]
    out += ["", "Linear probes (last iteration): R² from engine level l to E[s_l | x̃]",
            formatting.text_table(["engine"] + [f"level {l}" for l in range(levels)], rows)]
    if "rladder_horizon" in scores:
        out += ["", horizon_table(scores["rladder_horizon"], iterations)]
    return "\n".join(out)


def horizon_table(curves: harness.Curves, trained: int) -> str:
    """The RLadder's MSE ratio (and class KL) at every iteration up to its longest run,
    the trained horizon marked."""
    rows = [[f"{t + 1}{' (trained)' if t + 1 == trained else ''}", curves.mse_ratio[t],
             formatting.at(curves.kl, t)] for t in range(len(curves.mse_ratio))]
    return "\n".join([f"Beyond the trained horizon ({trained} iterations): the RLadder run for "
                      f"{len(curves.mse_ratio)}",
                      formatting.text_table(["iteration", "MSE ratio", "KL"], rows)])


def results_payload(args, config, data, scores, train_results, wall, device) -> dict:
    payload = {name: scores[name].as_dict() for name in (*ENGINES, "vb", "vb_prior")}
    payload["wiener"] = {"mse_ratio": scores["wiener"].mse_ratio[0]}
    if "rladder_horizon" in scores:
        payload["rladder_horizon"] = scores["rladder_horizon"].as_dict()
    payload["bayes"] = {"mse": data.bayes_mse, "error": data.bayes_error,
                        "eval_samples": data.size}
    payload["settings"] = {
        **exp.EMBEDDED_MODELS.settings(config.task), "preset": args.preset,
        "seed": args.seed, "iterations": config.task.iterations,
        "vb": "vb: mean-field VB (full covariance within levels) started from the exact "
              "posterior of the moment-matched linear-Gaussian model; vb_prior: started from "
              "the prior (SPEC schedule: levels bottom-up, then q(c))",
        "engines": {name: {"run_dir": str(res.run_dir), "steps": res.step,
                           "config": config_to_dict(cfg)}
                    for name, (cfg, res) in train_results.items()},
    }
    payload["wall_time_s"] = wall
    payload.update(provenance(device))
    return payload


def run(args) -> int:
    start = time.time()
    if args.horizon < 1:
        raise ConfigError(f"--horizon: expected an int >= 1, got {args.horizon}")
    if args.deprecated_model:
        args.explicit_model = "classes" if args.deprecated_model == "mixture" else args.deprecated_model
        print(f"warning: --model is deprecated, use --explicit-model {args.explicit_model}", file=sys.stderr)
    if args.model_file is not None and args.explicit_model is not None:
        raise ConfigError("--model-file and --explicit-model: give one of them (the model file replaces "
                          "the embedded model)")
    args.explicit_model = args.explicit_model or "classes"
    model = common.explicit_model(args.spec, args, *fixed_overrides(args))
    print(f"explicit model: {model}" + (f" from {args.model_file}" if args.model_file is not None else ""))
    train_results = train_engines(args)
    config = train_results["rladder"][0]
    device = next(train_results["rladder"][1].model.parameters()).device
    engines = {name: res.model for name, (_, res) in train_results.items()}
    data, scores = score_all(model, engines, config, device, args.horizon)
    print()
    print(tables(data, scores, config.task.iterations))
    payload = results_payload(args, config, data, scores, train_results, time.time() - start, device)
    write_json_atomic(args.out / "results.json", payload)
    from .figures import plot_curves

    plot_curves(payload, args.out / "curves.png")
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'curves.png'} "
          f"({payload['wall_time_s']:.0f} s)")
    return 0
