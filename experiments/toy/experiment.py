"""The built-in ``toy`` experiment: a small MLP regresses ``y = sin(x·w) + noise`` sampled
from a fixed explicit model. It is the example of how an experiment plugs in, and what the
training tests run.

The data come either as an endless :class:`SampledStream` of fresh samples (default) or,
with ``data.map_style=true``, as a fixed ``TensorDataset`` read through ``DataLoader``.
The Bayes-optimal MSE is the noise variance, so ``mse_ratio`` (≥ 1) says how far the
network is from optimal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from pgm_ladder.training.batches import LoaderStream, SampledStream
from pgm_ladder.training.config import ExperimentConfig, OptimConfig, TrainConfig
from pgm_ladder.training.spec import Parts

MODEL_SEED = 20240601  # the explicit model (teacher) is the same for every run seed
EVAL_SEED = 987654321


@dataclass
class ToyData:
    input_dim: int = 4
    noise_std: float = 0.1
    map_style: bool = False
    dataset_size: int = 512  # map-style only
    eval_size: int = 2048


@dataclass
class ToyModel:
    hidden: tuple[int, ...] = (32,)


@dataclass
class ToyConfig(ExperimentConfig):
    data: ToyData = field(default_factory=ToyData)
    model: ToyModel = field(default_factory=ToyModel)


def teacher_weights(input_dim: int) -> torch.Tensor:
    return torch.randn(input_dim, generator=torch.Generator().manual_seed(MODEL_SEED))


def sample(data: ToyData, weights: torch.Tensor, generator: torch.Generator,
           n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` draws of ``(x, y)`` from the explicit model with teacher ``weights``."""
    x = torch.randn(n, data.input_dim, generator=generator)
    y = torch.sin(x @ weights)
    return x, (y + data.noise_std * torch.randn(n, generator=generator)).unsqueeze(-1)


def mlp(input_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = input_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 1))


def mse_loss(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    x, y = batch
    pred = model(x)
    return {"loss": nn.functional.mse_loss(pred, y), "abs_error": (pred - y).abs().mean().detach()}


def build(config: ToyConfig, device: torch.device, seed: int) -> Parts:
    data = config.data
    w = teacher_weights(data.input_dim)
    model = mlp(data.input_dim, config.model.hidden).to(device)
    if data.map_style:
        x, y = sample(data, w, torch.Generator().manual_seed(seed), data.dataset_size)
        batches = LoaderStream(TensorDataset(x, y), config.train.batch_size, seed=seed)
    else:
        batches = SampledStream(lambda g, n: sample(data, w, g, n), config.train.batch_size, seed)
    x_eval, y_eval = sample(data, w, torch.Generator().manual_seed(EVAL_SEED), data.eval_size)

    def evaluate(net: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            mse = float(nn.functional.mse_loss(net(x_eval.to(device)).cpu(), y_eval))
        return {"mse": mse, "bayes_mse": data.noise_std ** 2, "mse_ratio": mse / data.noise_std ** 2}

    def figures(net: nn.Module, out: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with torch.no_grad():
            pred = net(x_eval.to(device)).cpu()
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(y_eval[:500, 0], pred[:500, 0], s=4)
        ax.set(xlabel="target y", ylabel="prediction", title="toy: held-out fit")
        fig.savefig(out / "fit.png", dpi=80)
        plt.close(fig)

    return Parts(model=model, train_batches=batches, loss=mse_loss, evaluate=evaluate,
                 figures=figures)


PRESETS = {
    "smoke": ToyConfig(train=TrainConfig(steps=60, batch_size=32, checkpoint_every=20,
                                         log_every=10, device="cpu"),
                       optim=OptimConfig(lr=1e-2), model=ToyModel(hidden=(16,)),
                       data=ToyData(eval_size=512)),
    "cpu": ToyConfig(train=TrainConfig(steps=3000, batch_size=128, checkpoint_every=500,
                                       log_every=50, schedule="cosine", device="cpu"),
                     optim=OptimConfig(lr=3e-3), model=ToyModel(hidden=(64, 64))),
    "paper": ToyConfig(train=TrainConfig(steps=20000, batch_size=256, checkpoint_every=2000,
                                         log_every=100, schedule="cosine", warmup_steps=500),
                       optim=OptimConfig(lr=1e-3), model=ToyModel(hidden=(256, 256))),
}
