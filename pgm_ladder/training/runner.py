"""The trainer: the one training loop every experiment shares.

:func:`train` starts a run in a new run directory, :func:`resume` continues one from its
latest (or a named) checkpoint, :func:`evaluate_run` scores a run's checkpoint,
:func:`figures_run` draws its figures. The first three
run unchanged under ``torchrun`` (one process per device, DDP; only rank 0 writes).
"""
from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from pgm_ladder.atomic_io import write_json_atomic
from pgm_ladder.training import distributed as ddp
from pgm_ladder.training.batches import rank_seed, to_device
from pgm_ladder.training.batchnorm import batch_statistics as bn_batch_statistics
from pgm_ladder.training.checkpoint import (FORMAT, CheckpointDir, load_checkpoint, rng_state,
                                            seed_all, set_rng_state)
from pgm_ladder.training.config import apply_overrides, config_from_dict, config_to_dict
from pgm_ladder.training.devices import (autocast, check_device_options, resolve_device,
                                         set_determinism)
from pgm_ladder.training.errors import (CheckpointError, ConfigError, NonFiniteLossError, RunDirError,
                                        TrainingError, TrainingInterrupted)
from pgm_ladder.training.optim import make_optimizer, make_scheduler
from pgm_ladder.training.events import EventLog, require_tensorboard
from pgm_ladder.training.progress import Progress, bars_wanted, lines_wanted, note
from pgm_ladder.training.provenance import provenance
from pgm_ladder.training.spec import ExperimentSpec, Parts, load_spec, remember
from pgm_ladder.training.run_dir import MetricsLog, RunDir, default_run_dir


@dataclass
class TrainResult:
    """What a finished (or already complete) run returns; ``metrics`` is the final
    ``evaluate`` output on rank 0 and empty on the other processes."""

    run_dir: Path
    model: nn.Module
    metrics: dict
    step: int


def train(spec: ExperimentSpec, config: Any, run_dir: Optional[Path] = None,
          *, preset: str = "custom", seed: int = 0, overrides: Sequence[str] = (),
          quiet: bool = False, tensorboard: bool = False) -> TrainResult:
    """Train experiment ``spec`` with ``config`` into a new ``run_dir`` (default
    ``runs/EXPERIMENT-PRESET-seedS-TIME``). ``preset``, ``overrides`` and ``spec.home`` are
    recorded. ``run_dir`` must not exist, be empty, or hold a run killed before its first
    checkpoint (started afresh: it has nothing to lose). ``tensorboard``: also write the
    metrics as TensorBoard event files in ``RUN_DIR/tensorboard``."""
    if not isinstance(spec, ExperimentSpec):
        raise TypeError(f"spec: expected an ExperimentSpec, got {type(spec).__name__} (look a "
                        "name up with experiments.registry.get)")
    remember(spec)
    if not isinstance(config, spec.config_type):
        raise TypeError(f"config for {spec.name!r} must be a {spec.config_type.__name__}")
    if tensorboard:
        require_tensorboard()
    ctx, device = _start(config)
    try:
        path = ddp.broadcast(ctx, str(run_dir or default_run_dir(spec.name, preset, seed)))
        run = RunDir(Path(path))
        refusals = [r for r in ddp.gather(ctx, run.new_run_refusal()) if r]
        if refusals:
            raise RunDirError(refusals[0])
        if ctx.is_main:
            if run.clear_stillborn():
                note(f"{run.path}: a run killed before its first checkpoint; starting it afresh",
                     quiet=quiet, is_main=True)
            run.create({"experiment": spec.name, "home": spec.home, "preset": preset, "seed": seed,
                        "overrides": list(overrides), "config": config_to_dict(config)})
        ddp.barrier(ctx)
        return _Trainer(spec, config, run, seed, device, ctx, quiet, tensorboard).run(None, None)
    finally:
        ddp.shutdown(ctx)


def resume(run_dir: Path, *, checkpoint: Optional[Path] = None, overrides: Sequence[str] = (),
           quiet: bool = False, tensorboard: bool = False) -> TrainResult:
    """Continue the run in ``run_dir`` from ``checkpoint`` (default: its latest loadable
    one, saying so when a later one is corrupt), with optional config ``overrides`` (e.g.
    ``train.steps=2000`` to train longer, ``train.device=cpu``). A run killed before its
    first checkpoint starts afresh from step 0 with its config and seed. Nothing is written
    unless a checkpoint loads or there is none."""
    if tensorboard:
        require_tensorboard()
    run, manifest, spec, config, path, state = _open_run(run_dir, checkpoint, overrides,
                                                         fallback=True, quiet=quiet)
    ctx, device = _start(config)
    try:
        trainer = _Trainer(spec, config, run, manifest["seed"], device, ctx, quiet, tensorboard)
        if overrides and ctx.is_main:
            trainer.pending_manifest = {
                **manifest, "config": config_to_dict(config),
                "resume_overrides": manifest.get("resume_overrides", []) + list(overrides)}
        if state is None and ctx.is_main:
            run.clear_stillborn()
            trainer.say(f"{run.path} holds no checkpoint (killed before its first one): starting "
                        f"from step 0 with its config and seed {manifest['seed']}")
            if trainer.pending_manifest is not None:
                run.write_manifest(trainer.pending_manifest)
        ddp.barrier(ctx)
        return trainer.run(state, path)
    finally:
        ddp.shutdown(ctx)


def evaluate_run(run_dir: Path, *, checkpoint: Optional[Path] = None,
                 device: Optional[str] = None, batch_statistics: bool = False,
                 overrides: Sequence[str] = ()) -> dict:
    """Score the latest (or a named) checkpoint of a run with the experiment's
    ``evaluate``; the metrics are also written to ``RUN_DIR/eval.json``.
    ``batch_statistics``: every BatchNorm normalises with the evaluation batch's own
    statistics instead of its running ones (:mod:`.batchnorm`, a diagnostic of train/eval
    mismatch); written to ``RUN_DIR/eval-batch-statistics.json`` instead. ``overrides``:
    ``KEY=VALUE`` changes of the run's config for this evaluation only (e.g. another
    evaluation split or size; recorded in the JSON file)."""
    overrides = list(overrides) + ([f"train.device={device}"] if device else [])
    run, spec, path, state, dev, parts = _trained_parts(run_dir, checkpoint, overrides)
    model = parts.model
    if batch_statistics:
        with bn_batch_statistics(model) as switched:
            if not switched:
                raise ConfigError(f"--batch-statistics: the network of {run.path} has no BatchNorm "
                                  f"with running statistics")
            metrics = _evaluate(parts, model)
    else:
        metrics = _evaluate(parts, model)
    name = "eval-batch-statistics.json" if batch_statistics else "eval.json"
    write_json_atomic(run.path / name, {
        "experiment": spec.name, "checkpoint": str(path), "step": state["step"],
        "batch_statistics": batch_statistics, "overrides": overrides, "metrics": metrics,
        **provenance(dev)})
    return metrics


def figures_run(run_dir: Path, *, checkpoint: Optional[Path] = None, device: Optional[str] = None,
                out: Optional[Path] = None) -> Path:
    """Draw the experiment's figures for the latest (or a named) checkpoint of a run into
    ``out`` (default ``RUN_DIR/figures``, as at the end of training); returns the folder."""
    overrides = [f"train.device={device}"] if device else []
    run, spec, path, state, dev, parts = _trained_parts(run_dir, checkpoint, overrides)
    if parts.figures is None:
        raise ConfigError(f"experiment {spec.name!r} draws no figures")
    target = Path(out) if out is not None else run.figures
    target.mkdir(parents=True, exist_ok=True)
    parts.model.eval()
    parts.figures(parts.model, target)
    return target


# --------------------------------------------------------------------------- internals

def _trained_parts(run_dir: Path, checkpoint: Optional[Path], overrides: Sequence[str]):
    """The run, its experiment, the checkpoint's path and state, the device and the
    experiment's parts with the checkpoint's weights loaded, on that device."""
    run, manifest, spec, config, path, state = _open_run(run_dir, checkpoint, overrides)
    dev = resolve_device(config.train.device)
    seed_all(manifest["seed"])
    parts = spec.build(config, dev, manifest["seed"])
    _load_model(parts.model, state, path)
    parts.model.to(dev)
    return run, spec, path, state, dev, parts


def _open_run(run_dir: Path, checkpoint: Optional[Path], overrides: Sequence[str], *,
              fallback: bool = False, quiet: bool = False):
    """The run's manifest, experiment, config (with ``overrides``) and loaded checkpoint
    (the named one, else the latest); reads only. ``fallback`` (resume): when the latest
    checkpoint does not load, the latest that does, saying so, and ``(None, None)`` for a
    run without any checkpoint; otherwise a run without a checkpoint is an error."""
    run = RunDir(Path(run_dir))
    manifest = run.read_manifest()
    spec = load_spec(manifest["experiment"], manifest.get("home"))
    config = apply_overrides(config_from_dict(spec.config_type, spec.upgrade(manifest["config"])),
                             spec.overrides(overrides))
    if checkpoint:
        return run, manifest, spec, config, Path(checkpoint), load_checkpoint(checkpoint, spec.name)
    found = CheckpointDir(run.checkpoints, 1).all()
    if not found and not fallback:
        raise RunDirError(f"run directory {run.path} holds no checkpoint (looked in "
                          f"{run.checkpoints})")
    path, state = _latest_loadable(found, spec.name, fallback, quiet)
    return run, manifest, spec, config, path, state


def _latest_loadable(found: Sequence[Path], experiment: str, fallback: bool, quiet: bool):
    """``(path, state)`` of the latest of the checkpoints ``found`` (oldest first) that
    loads; without ``fallback`` only the latest is tried, and its error names the earlier
    one to pass with ``--checkpoint``."""
    failed: list[CheckpointError] = []
    for path in reversed(found):
        try:
            state = load_checkpoint(path, experiment)
        except CheckpointError as err:
            if not fallback:
                earlier = f"; the one before is {found[-2]} (pass --checkpoint {found[-2]})" \
                    if len(found) > 1 else ""
                raise CheckpointError(f"{err}{earlier}") from err
            failed.append(err)
            continue
        if failed:
            note(f"note: {found[-1]} does not load ({len(failed)} checkpoint(s) corrupt); falling back "
                 f"to {path} (step {state['step']}); the later ones will be replaced. Pass --checkpoint "
                 "to choose another.", quiet=quiet, is_main=ddp.from_environment().is_main)
        return path, state
    if failed:
        raise CheckpointError(f"no checkpoint of {Path(found[0]).parent} loads: "
                              + "; ".join(map(str, failed)))
    return None, None


def _start(config) -> tuple[ddp.DistContext, torch.device]:
    ctx = ddp.from_environment()
    device = resolve_device(config.train.device, ctx.local_rank, ctx.world_size)
    check_device_options(config.train, device)
    return ddp.init_process_group(ctx, device), device


def _load_model(model: nn.Module, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not fit the model built from the run's "
                              f"config: {err}") from err


def _evaluate(parts: Parts, model: nn.Module) -> dict:
    model.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in parts.evaluate(model).items()}
    model.train()
    return metrics


def _scalars(values: dict) -> dict:
    return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
            for k, v in values.items()}


class _StopSignals:
    """SIGINT/SIGTERM set ``signum`` (the loop then checkpoints and stops); a second
    signal gets the previous handler (Ctrl-C twice aborts at once)."""

    def __init__(self):
        self.signum = 0
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        previous = self._previous[signum]
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


class _Trainer:
    def __init__(self, spec: ExperimentSpec, config, run: RunDir, seed: int,
                 device: torch.device, ctx: ddp.DistContext, quiet: bool, tensorboard: bool = False):
        self.spec, self.config, self.cfg = spec, config, config.train
        self.run_dir, self.seed, self.device, self.ctx, self.quiet = run, seed, device, ctx, quiet
        self.tensorboard = tensorboard
        self.pending_manifest: Optional[dict] = None
        self.checkpoints = CheckpointDir(run.checkpoints, self.cfg.keep_last)

    def say(self, text: str) -> None:
        note(text, quiet=self.quiet, is_main=self.ctx.is_main)

    # -- set-up -------------------------------------------------------------------------
    def _build(self) -> Parts:
        seed_all(self.seed)  # identical initial parameters on every process
        parts = self.spec.build(self.config, self.device, self.seed)
        if not isinstance(parts, Parts):
            raise TypeError(f"experiment {self.spec.name!r}: build() must return Parts")
        self.model = parts.model.to(self.device)
        self.optimizer = parts.optimizer or make_optimizer(self.model.parameters(), self.config.optim)
        self.source = parts.train_batches
        self.source.bind(self.ctx.rank, self.ctx.world_size)
        # the schedule's (and progress bar's) horizon; training ends by _done()
        self.total_steps = self.cfg.steps or self.cfg.epochs * self.source.batches_per_epoch
        self.scheduler = parts.scheduler or make_scheduler(self.optimizer, self.cfg, self.total_steps)
        return parts

    def _restore(self, state: dict, path: Path) -> None:
        _load_model(self.model, state, path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {path}: optimiser/scheduler state does not fit: "
                                  f"{err}") from err
        ranks = state.get("ranks") or [{"batches": state["batches"], "rng": state["rng"]}]
        mine = ranks[self.ctx.rank] if self.ctx.rank < len(ranks) else ranks[0]
        self.source.load_state_dict(mine["batches"])
        set_rng_state(mine["rng"])
        if len(ranks) != self.ctx.world_size:
            self.say(f"note: {path} was written by {len(ranks)} process(es), resuming with "
                     f"{self.ctx.world_size}: the data order differs from an uninterrupted run")
            if self.ctx.rank >= len(ranks):
                seed_all(rank_seed(self.seed, self.ctx.rank, state["step"]))

    def _reset_after(self, step: int) -> None:
        """Rank 0, on resume: forget what the interrupted process did after ``step``."""
        for path in self.checkpoints.all():
            if int(path.stem[5:]) > step:
                path.unlink()
        self.checkpoints.remove_stale_temporaries()
        MetricsLog.truncate_after(self.run_dir.metrics, step)
        if self.pending_manifest is not None:
            self.run_dir.write_manifest(self.pending_manifest)

    # -- the loop -------------------------------------------------------------------------
    def run(self, state: Optional[dict], state_path: Optional[Path]) -> TrainResult:
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        set_determinism(self.cfg.deterministic, self.device)
        try:
            return self._run(state, state_path)
        finally:
            torch.use_deterministic_algorithms(deterministic_before)

    def _run(self, state: Optional[dict], state_path: Optional[Path]) -> TrainResult:
        parts = self._build()
        self.step, self.wall_before = 0, 0.0
        if state is not None:
            self._restore(state, state_path)
            self.step, self.wall_before = int(state["step"]), float(state.get("wall_time_s", 0.0))
            if self._done() and self.run_dir.results.exists():
                self.say(f"{self.run_dir.path}: already complete at step {self.step}")
                return TrainResult(self.run_dir.path, self.model,
                                   self.run_dir.read_results().get("metrics", {}), self.step)
            if self.ctx.is_main:
                self._reset_after(self.step)
            self.say(f"resuming {self.spec.name} from {state_path} (step {self.step})")
        elif self.ctx.enabled:
            seed_all(rank_seed(self.seed, self.ctx.rank))  # e.g. different dropout per process
        self.last_checkpoint, self.saved_step = state_path, (self.step if state else None)
        self.epoch = self.source.epoch
        model = ddp.wrap(self.model, self.ctx, self.device)
        if self.cfg.compile:
            model = torch.compile(model)
        self.logs = [MetricsLog(self.run_dir.metrics)] if self.ctx.is_main else []
        if self.tensorboard and self.ctx.is_main:
            self.logs.append(EventLog(self.run_dir.tensorboard))
        self.t0 = time.monotonic()
        progress = Progress(self.total_steps, self.source.batches_per_epoch, self.step,
                            bars_wanted(self.quiet, self.ctx.is_main),
                            lines=lines_wanted(self.quiet, self.ctx.is_main),
                            label=f"{self.spec.name} ({self.run_dir.path})")
        try:
            with _StopSignals() as stop:
                while not self._done():
                    if ddp.any_flag(self.ctx, self.device, stop.signum != 0)[0]:
                        self._interrupted(stop.signum or signal.SIGTERM)
                    loss = self._one_step(model, parts)
                    progress.update(self.step, loss)
                    self._periodic(parts)
            progress.close()
            return self._finish(parts)
        finally:
            progress.close()
            for log in self.logs:
                log.close()

    def _one_step(self, model: nn.Module, parts: Parts) -> float:
        epoch = self.source.epoch
        batch = to_device(self.source.next_batch(), self.device)
        model.train()
        with autocast(self.cfg, self.device):
            out = parts.loss(model, batch)
        if "loss" not in out:
            raise TrainingError(f"experiment {self.spec.name!r}: loss() returned no 'loss' "
                                f"(keys: {sorted(out)})")
        loss = out["loss"]
        value = float(loss.detach())
        if ddp.any_flag(self.ctx, self.device, not math.isfinite(value))[0]:
            self._non_finite(f"loss ({value})", epoch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        extra = {}
        if self.cfg.grad_clip is not None:
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip))
            if not math.isfinite(norm):
                self._non_finite(f"gradient norm ({norm})", epoch)
            extra["grad_norm"] = norm
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.epoch = epoch
        if self.step % self.cfg.log_every == 0 or self._done():
            record = {**_scalars(out), **extra, "lr": lr}
            self._log(ddp.mean_over_processes(self.ctx, self.device, record))
        return value

    def _done(self) -> bool:
        if self.cfg.steps:
            return self.step >= self.cfg.steps
        return self.source.epoch >= self.cfg.epochs

    def _periodic(self, parts: Parts) -> None:
        if self._done():
            return
        if self.cfg.eval_every and self.step % self.cfg.eval_every == 0 and self.ctx.is_main:
            self._log({f"eval/{k}": v for k, v in _evaluate(parts, self.model).items()})
        if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
            self._save()

    def _wall(self) -> float:
        return self.wall_before + time.monotonic() - self.t0

    def _log(self, values: dict) -> None:
        record = {"step": self.step, "epoch": self.epoch, "wall_time_s": round(self._wall(), 4), **values}
        for log in self.logs:
            log.write(record)

    def _save(self) -> None:
        """Write a checkpoint of the state after ``self.step`` steps (all processes
        contribute their data position and RNG states; rank 0 writes)."""
        ranks = ddp.gather(self.ctx, {"batches": self.source.state_dict(), "rng": rng_state()})
        self.saved_step = self.step
        if self.ctx.is_main:
            self.last_checkpoint = self.checkpoints.save(self.step, {
                "format": FORMAT, "experiment": self.spec.name, "step": self.step,
                "epoch": self.source.epoch, "world_size": self.ctx.world_size,
                "wall_time_s": self._wall(), "config": config_to_dict(self.config),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "batches": ranks[0]["batches"], "rng": ranks[0]["rng"], "ranks": ranks,
            })

    def _non_finite(self, what: str, epoch: int) -> None:
        last = self.last_checkpoint or "none written yet"
        raise NonFiniteLossError(
            f"non-finite {what} at step {self.step + 1} (epoch {epoch}) of experiment "
            f"{self.spec.name!r}; training stopped without applying it. Last good checkpoint: "
            f"{last}. Lower optim.lr or set train.grad_clip, then `pgm-ladder resume "
            f"{self.run_dir.path}`.")

    def _interrupted(self, signum: int) -> None:
        self._save()
        name = signal.Signals(signum).name
        raise TrainingInterrupted(
            f"{name} at step {self.step}: checkpoint {self.last_checkpoint} written; continue "
            f"with `pgm-ladder resume {self.run_dir.path}`", signum, self.run_dir.path)

    def _finish(self, parts: Parts) -> TrainResult:
        if self.saved_step != self.step:
            self._save()
        metrics: dict = {}
        if self.ctx.is_main:
            metrics = _evaluate(parts, self.model)
            self._log({f"eval/{k}": v for k, v in metrics.items()})
            if parts.figures is not None:
                self.run_dir.figures.mkdir(exist_ok=True)
                parts.figures(self.model, self.run_dir.figures)
            manifest = self.run_dir.read_manifest()
            write_json_atomic(self.run_dir.results, {
                "experiment": self.spec.name, "preset": manifest["preset"],
                "seed": self.seed, "seeds": [self.seed], "world_size": self.ctx.world_size,
                "steps": self.step, "epochs": self.source.epoch, "status": "completed",
                "wall_time_s": round(self._wall(), 3), "metrics": metrics,
                "paper_numbers": {k: asdict(v) for k, v in self.spec.paper_numbers.items()},
                "config": config_to_dict(self.config), **provenance(self.device),
            })
            self.say(f"{self.spec.name}: {self.step} steps in {self._wall():.1f} s; "
                     f"results in {self.run_dir.results}")
        ddp.barrier(self.ctx)
        return TrainResult(self.run_dir.path, self.model, metrics, self.step)
