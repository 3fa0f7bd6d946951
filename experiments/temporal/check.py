"""``pgm-ladder check temporal``: does the RLadder's wiring learn online inference in a
temporal hierarchical model? (SPEC §2.2, §3.2, §4)

Trains the temporal RLadder (one iteration per frame, next-observation prediction) and its
two ablations — no decoder (a hierarchical RNN) and no decoder-to-encoder connections —
with the shared trainer (``temporal`` experiment, one run directory each under ``--out``)
on sequences of the embedded temporal Gaussian hierarchy (widths 8-4-2, slow dynamics at
the top, ~30 % of observation entries occluded at random). Then scores every engine, the
paper's online VB filter (past fixed, future dropped; at its per-frame fixed point and
with one sweep per frame) and the prior mean against the Kalman filter's optimal
prediction on the same fresh sequences, per frame and on average:
``MSE / Kalman-optimal MSE`` (1 is optimal; Rao-Blackwellised).
Writes ``OUT/results.json`` (every method's ratio at every frame with its standard error
over sequences, and the pooled mean), ``OUT/frame_ratios.png`` (ratio against frame, all
methods) and ``OUT/prediction.png``, and prints the table. The engine runs one RLadder
iteration per frame, so there is no per-iteration curve within a frame.
Re-running with the same ``--out`` reuses finished engine runs and resumes interrupted ones
(a run of another config or seed there is refused, naming the differing fields).
"""
from __future__ import annotations

import time

import torch

from pgm_ladder import formatting
from pgm_ladder.harness import temporal as harness
from pgm_ladder import checks as common
from pgm_ladder.atomic_io import write_json_atomic
from pgm_ladder.training.config import config_to_dict
from pgm_ladder.training.provenance import provenance

from . import experiment as exp

ENGINES = tuple(exp.ENGINES)
LABELS = {"rladder": "RLadder", "no_decoder": "no decoder", "no_decoder_to_encoder": "no dec→enc",
          "vb_filter": "VB filter", "vb_filter_1sweep": "VB 1 sweep", "prior": "prior mean"}


def register(subparsers, spec) -> None:
    """Add ``check temporal`` for experiment ``spec`` to ``subparsers``."""
    p = common.add_check_parser(subparsers, "temporal", ("temporal RLadder and ablations vs the Kalman "
                                "filter of the embedded temporal Gaussian hierarchy"),
                                __doc__, exp.PRESETS, 5)
    p.set_defaults(func=run, spec=spec)




def score_all(model, engines: dict, config, device):
    """Scores (per-frame and mean ratios) and the predictions the figure shows."""
    data = exp.eval_set(model, config.task)
    scores, shown = {}, {}
    for name, net in engines.items():
        pred, top = harness.engine_predictions(net, data, device)
        scores[name] = harness.prediction_ratios(pred, data)
        if top is not None:
            scores[name].update(harness.top_ratios(top, data))
        shown[name] = pred
    scores["vb_filter"] = harness.prediction_ratios(harness.vb_filter_predictions(model, data, config.task.vb_sweeps), data)
    scores["vb_filter"]["sweeps_per_frame"] = config.task.vb_sweeps
    scores["vb_filter_1sweep"] = harness.prediction_ratios(harness.vb_filter_predictions(model, data, 1), data)
    scores["vb_filter_1sweep"]["sweeps_per_frame"] = 1
    scores["prior"] = harness.prediction_ratios(harness.prior_predictions(model, data), data)
    return data, scores, shown


def shown_frames(frames: int, rows: int = 20, head: int = 6) -> list[int]:
    """The frame indices (0-based) the printed table shows: every frame when there are at
    most ``rows``, else the first ``head``, about ``rows - head - 1`` evenly spaced ones and
    the last (results.json keeps every frame)."""
    if frames <= rows:
        return list(range(frames))
    stride = -(-(frames - head) // (rows - head - 1))
    return sorted(set(range(head)) | set(range(head, frames, stride)) | {frames - 1})


def _pm(value: float, sem: float) -> str:
    return f"{value:.4f} ± {sem:.4f}"


def table(data, scores: dict) -> str:
    """Frames × methods: the per-frame ratio ``± s.e.`` (over sequences), then the pooled mean."""
    methods = [m for m in LABELS if m in scores]
    optimal = data.optimal_mse
    frames = shown_frames(len(optimal))
    rows = [[t + 1] + [_pm(scores[m]["mse_ratio"][t], scores[m]["mse_ratio_sem"][t]) for m in methods]
            for t in frames]
    rows.append(["mean"] + [_pm(scores[m]["mean_mse_ratio"], scores[m]["mean_mse_ratio_sem"]) for m in methods])
    head = (f"Next-frame prediction: MSE / Kalman-optimal MSE after frame t, ± s.e. over the {data.size} fresh "
            f"sequences (1 is optimal; mean = pooled over frames)")
    if len(frames) < len(optimal):
        head += f"; {len(frames)} of {len(optimal)} frames shown, all in results.json"
    shown_optimal = ", ".join(f"{optimal[t]:.4f}" for t in frames)
    out = (head + "\n" + formatting.text_table(["frame t"] + [LABELS[m] for m in methods], rows)
           + f"\nThe Kalman-optimal MSE itself, E tr Cov(x_t+1 | x̃_1:t), after the frames shown: "
           + f"{shown_optimal} (mean {sum(optimal) / len(optimal):.4f})")
    tops = [f"{LABELS[m]} {scores[m]['mean_top_mse_ratio']:.4f}" for m in methods if "mean_top_mse_ratio" in scores[m]]
    if tops:
        out += "\nTop-level task (estimate s_L,t from e_L,t), MSE / Bayes MSE, mean over frames: " + ", ".join(tops)
    return out


def results_payload(args, model, config, data, scores, train_results, wall, device) -> dict:
    payload = {name: scores[name] for name in scores}
    payload["kalman"] = {"optimal_mse": data.optimal_mse, "eval_sequences": data.size}
    payload["settings"] = {
        **exp.EMBEDDED_MODELS.settings(config.task), "preset": args.preset, "seed": args.seed, "frames": config.task.frames,
        "occlusion": config.task.occlusion, "target": config.task.target, "torch_threads": torch.get_num_threads(),
        "engines": {name: {"run_dir": str(res.run_dir), "steps": res.step, "config": config_to_dict(cfg),
                           "engine_config": config_to_dict(exp.engine_config(cfg, model))}
                    for name, (cfg, res) in train_results.items()},
    }
    payload["wall_time_s"] = wall
    payload.update(provenance(device))
    return payload


def run(args) -> int:
    start = time.time()
    model = common.explicit_model(args.spec, args)
    train_results = common.train_engines(args.spec, args, {e: common.engine_overrides(args, e) for e in ENGINES})
    config = train_results["rladder"][0]
    print(f"explicit model: {model}" + (f" from {args.model_file}" if args.model_file is not None else "")
          + f", occlusion {config.task.occlusion:g}")
    device = next(train_results["rladder"][1].model.parameters()).device
    engines = {name: res.model for name, (_, res) in train_results.items()}
    data, scores, shown = score_all(model, engines, config, device)
    print()
    print(table(data, scores))
    payload = results_payload(args, model, config, data, scores, train_results, time.time() - start, device)
    write_json_atomic(args.out / "results.json", payload)
    from .figures import plot_frame_ratios, plot_predictions

    title = f"check temporal — preset {args.preset}, seed {args.seed}"
    plot_predictions(data, shown["rladder"], args.out / "prediction.png",
                     title=f"{title}; RLadder mean ratio {scores['rladder']['mean_mse_ratio']:.4f}")
    plot_frame_ratios(scores, LABELS, ENGINES, args.out / "frame_ratios.png", title=title)
    print(f"\nwrote {args.out / 'results.json'}, {args.out / 'prediction.png'} and {args.out / 'frame_ratios.png'} "
          f"({payload['wall_time_s']:.0f} s)")
    return 0
