"""Diagnostic run at revision 3ee2bff (before per-frame BatchNorm statistics): test/train error of
a run in eval mode (running statistics) vs train mode (each 100-sequence batch's own statistics).
Usage at that revision: python shared_bn_gap_3ee2bff.py RUN_DIR [N]. Later revisions: pgm-ladder eval RUN --batch-statistics."""
import json, sys, torch
from pathlib import Path
from pgm_ladder.training.config import config_from_dict
from pgm_ladder.training.checkpoint import load_checkpoint
from experiments.occluded_mnist.config import OccludedMNISTConfig
from experiments.occluded_mnist import data as D, task
from experiments.occluded_mnist.rows import build_model
torch.set_num_threads(1)
run = Path(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
cfg = config_from_dict(OccludedMNISTConfig, json.loads((run / "config.json").read_text())["config"])
model = build_model(cfg)
ck = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
model.load_state_dict(load_checkpoint(ck)["model"])
for split in ("test", "train"):
    data = D.load(split, n, 0)
    model.eval(); a = task.evaluate(model, data, cfg, "cpu")
    model.train(); b = task.evaluate(model, data, cfg, "cpu")
    print(run, ck.name, split, n, "eval-mode", a, "batch-stats", b, flush=True)
