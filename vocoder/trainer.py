"""The training skeleton both GAN trainers run on (stage one in ``specgan``, the vocoder here).

A trainer is a subclass that supplies its modules, optimisers, a batch source and a *step
function* returning named losses; this class owns everything else, once:

* the loop and step counting, a tqdm bar or — with progress off — periodic plain log lines
  (step, losses, rate, ETA), ``history.jsonl`` (one line per logged step, trimmed on resume and
  rollback so steps only increase) and TensorBoard;
* NaN handling: a batch with non-finite samples is dropped (data, not divergence); a non-finite
  loss or gradient norm rolls every rank back to the last checkpoint and multiplies the
  learning rates by ``nan_lr_factor ** k`` (k rollbacks since that checkpoint), stopping with
  a clear error after ``max_rollbacks`` in a row;
* checkpoints: ``model.safetensors`` (through the subclass's :meth:`export`) and then
  ``state.pt`` (the commit point, atomic, the previous one kept), with **every rank's** RNG
  state, so a resumed or rolled-back data-parallel run keeps N different streams of batches;
* data parallel under ``torchrun``: identical initial weights by broadcast, gradients averaged
  by one all-reduce per backward (by hand rather than DistributedDataParallel: stage one's
  gradient penalty differentiates through the critic twice, which DDP's reducer does not
  support), collective decisions for skips and rollbacks, rank 0 alone writes files;
* bf16 autocast (``amp``: auto = on for CUDA where supported, off on CPU).

Anchors: audiocraft's ``StandardSolver`` (one skeleton, ``run_step`` per solver), DAC's
``train_loop`` (losses as a named dict), nanoGPT's checkpoint (everything to resume).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from vocoder.checkpoint import load_training_state, save_training_state, trim_history

__all__ = ["LoopSettings", "Trainer"]

log = logging.getLogger(__name__)

_RANK_STRIDE = 1_000_003  # seed offset between ranks' streams


@dataclass
class LoopSettings:
    """What the skeleton needs from a trainer's config section.

    Attributes:
        log_every: Steps between logged losses (history, TensorBoard, plain lines).
        save_every: Steps between checkpoints (also written at the last step).
        eval_every: Steps between :meth:`Trainer.validate` calls (also at the last step).
        nan_lr_factor: Learning-rate factor per rollback.
        max_rollbacks: Rollbacks in a row (no checkpoint written between) before giving up.
        amp: ``"auto"`` (bf16 autocast on CUDA where supported), ``"bf16"`` or ``"off"``.
        section: The recipe section, for messages (``"specgan"``, ``"vocoder"``).
    """

    log_every: int = 20
    save_every: int = 500
    eval_every: int = 500
    nan_lr_factor: float = 0.5
    max_rollbacks: int = 5
    amp: str = "auto"
    section: str = "vocoder"


class Trainer:
    """Base class: subclasses implement the methods marked *subclass*.

    Args:
        out_dir: Checkpoints, history and logs.
        device: torch device.
        seed: Seeds the batch/noise stream (``seed + 1_000_003 * rank`` on each rank).
        settings: :class:`LoopSettings`.
    """

    progress_name = "train"

    def __init__(self, out_dir: str | Path, device: str | torch.device, seed: int, settings: LoopSettings):
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.settings = settings
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if distributed else 0
        self.world = dist.get_world_size() if distributed else 1
        self.seed = seed
        # Each rank its own stream of batches and noise (saved per rank in state.pt).
        self.sampler = torch.Generator().manual_seed(seed + _RANK_STRIDE * self.rank)
        self.step = 0
        self.rollbacks = 0
        self.bad_batches = 0
        self.cpu_seconds = 0.0   # CPU time this run has trained for (this rank), across resumes
        self._cpu_mark: float | None = None
        self._since_save = 0
        self._writer = None
        cuda = self.device.type == "cuda"
        bf16 = settings.amp == "bf16" or (settings.amp == "auto" and cuda and torch.cuda.is_bf16_supported())
        self.amp_dtype = torch.bfloat16 if bf16 else None

    # -- subclass API ---------------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        """*subclass*: every module saved and restored (e.g. G, D, G_ema)."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """*subclass*: every optimiser (their learning rates drop on a rollback)."""
        raise NotImplementedError

    def schedulers(self) -> dict[str, Any]:
        """Learning-rate schedulers saved with the state (none by default)."""
        return {}

    def next_batch(self) -> Any:
        """*subclass*: the next training batch (a tensor or a tuple of tensors), drawn from
        ``self.sampler`` and :meth:`rngs` so that resuming continues the same stream.
        """
        raise NotImplementedError

    def train_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """*subclass*: one optimisation step on ``batch``; returns named losses as detached
        tensors (floats here would sync the device every step). Use :meth:`optimize` for each
        backward so that data parallelism and gradient norms come for free.
        """
        raise NotImplementedError

    def export(self, path: Path) -> None:
        """*subclass*: write ``model.safetensors`` (rank 0; through the one checkpoint contract)."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Every ``eval_every`` steps on rank 0: dev metrics (logged), samples, best model."""
        return {}

    def rngs(self) -> dict[str, torch.Generator | np.random.Generator]:
        """Random streams saved per rank besides ``sampler`` and the global ones."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """What else resume needs (config, fingerprint, vocabulary...), plain data."""
        return {}

    def load_extra_state(self, state: dict[str, Any], weights_only: bool = False) -> None:
        """Restore :meth:`extra_state` and check it against this run (raise to refuse); with
        ``weights_only`` (fine-tuning) only what the weights themselves depend on is checked.
        """

    def check_saved_shape(self, saved: dict[str, Any] | None, shape: dict[str, Any], weights_only: bool,
                          fine_tune_parts: tuple[str, ...], what: str) -> None:
        """Refuse a checkpoint made by another run, naming the keys that differ (one line).

        Args:
            saved: The checkpoint's ``shape`` (what shaped its model), None for an older file.
            shape: This run's.
            weights_only: Fine-tuning: only ``fine_tune_parts`` must match (another dataset is
                the point); else the whole fingerprint.
            fine_tune_parts: The parts of ``shape`` the weights depend on.
            what: The model, as the fine-tuning message names it ("generator").
        """
        from vocoder.checkpoint import changed_keys, fingerprint

        if saved is None:
            return
        if weights_only:
            for part in fine_tune_parts:
                if saved.get(part) != shape[part]:
                    keys = changed_keys({part: saved.get(part)}, {part: shape[part]})
                    raise ValueError(f"the checkpoint is another {what} ({', '.join(keys[:4])} differ)")
        elif fingerprint(saved) != fingerprint(shape):
            keys = changed_keys(saved, shape)
            raise ValueError(f"{self.out_dir}: the checkpoint was trained with another "
                             f"{', '.join(keys[:6]) or 'configuration'}; retrain (--force) or restore those keys")

    def postfix(self, losses: dict[str, float]) -> dict[str, str]:
        """A few losses for the progress bar."""
        return {k.split("/")[-1]: f"{v:.3f}" for k, v in list(losses.items())[:3]}

    # -- helpers for step functions -------------------------------------------------------
    def autocast(self):
        """bf16 autocast where enabled (no-op otherwise)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, module: torch.nn.Module,
                 clip: float | None = None) -> torch.Tensor:
        """zero_grad → backward → average gradients across ranks → global grad norm (clipped
        to ``clip`` if given) → optimizer step. Returns the norm before clipping (detached).
        """
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.average_grads(module)
        params = [p for p in module.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf")) if params else torch.zeros(())
        optimizer.step()
        return norm.detach()

    def average_grads(self, module: torch.nn.Module) -> None:
        """Mean of every rank's gradients (one flat all-reduce)."""
        if self.world == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_parameters(self) -> None:
        """Identical start on every rank (rank 0's initialisation)."""
        if self.world == 1:
            return
        for module in self.modules().values():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any (a collective: all ranks must call)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    # -- state ----------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        state = {"sampler": self.sampler.get_state(), "torch": torch.get_rng_state(), "python": random.getstate()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        for name, g in self.rngs().items():
            state[f"own/{name}"] = g.get_state() if isinstance(g, torch.Generator) else g.bit_generator.state
        return state

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        # A generator's state is a CPU ByteTensor whatever the device; state.pt is loaded with
        # map_location = the training device, which moves these to the GPU on a CUDA resume.
        state = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in state.items()}
        self.sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch"])
        random.setstate(_tuples(state["python"]))
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)
        for name, g in self.rngs().items():
            if f"own/{name}" in state:
                if isinstance(g, torch.Generator):
                    g.set_state(state[f"own/{name}"])
                else:
                    g.bit_generator.state = state[f"own/{name}"]

    def _all_rng_states(self) -> list[dict[str, Any]]:
        """Every rank's RNG state, in rank order (a collective)."""
        mine = self._rng_state()
        if self.world == 1:
            return [mine]
        gathered: list[Any] = [None] * self.world
        cpu = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in mine.items()}
        dist.all_gather_object(gathered, cpu)
        return gathered

    def state_dict(self, rng: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"step": self.step, "rollbacks": self.rollbacks, "world": self.world, "cpu_seconds": self.cpu_seconds,
                "modules": {k: m.state_dict() for k, m in self.modules().items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers().items()},
                "rng": rng if rng is not None else [self._rng_state()], "extra": self.extra_state()}

    def load_state_dict(self, state: dict[str, Any], weights_only: bool = False) -> None:
        """Resume everything, or with ``weights_only`` initialise the modules (fine-tuning)."""
        self.load_extra_state(state.get("extra", {}), weights_only)
        for name, module in self.modules().items():
            if name in state["modules"]:
                module.load_state_dict(state["modules"][name])
        if weights_only:
            return
        for name, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers().items():
            sched.load_state_dict(state["schedulers"][name])
        ranks = state["rng"]
        if self.rank < len(ranks):
            self._set_rng_state(ranks[self.rank])
        else:  # more ranks than the run that saved: a fresh stream, still distinct per rank
            log.warning("resuming on %d ranks a run saved on %d: rank %d starts a new random stream",
                        self.world, len(ranks), self.rank)
            self.sampler.manual_seed(self.seed + _RANK_STRIDE * self.rank + int(state["step"]))
        self.step, self.rollbacks = int(state["step"]), int(state.get("rollbacks", 0))
        if self._cpu_mark is None:  # a resume: the CPU time behind the checkpoint
            self.cpu_seconds = float(state.get("cpu_seconds", 0.0))
        # (a rollback inside fit keeps counting: the CPU spent on the discarded steps was spent)

    def resume(self, path: str | Path | None = None) -> None:
        """Load ``state.pt`` (or the previous one if it is unreadable) on every rank."""
        self.load_state_dict(load_training_state(path or self.out_dir / "state.pt", self.device))

    def save(self) -> None:
        """Checkpoint (a collective): model.safetensors, then state.pt — the commit point."""
        rng = self._all_rng_states()
        self._since_save = 0  # on every rank: the lr factor after a rollback must agree
        if self._cpu_mark is not None:  # the CPU time behind this checkpoint, saved with it
            now = time.process_time()
            self.cpu_seconds += now - self._cpu_mark
            self._cpu_mark = now
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.export(self.out_dir / "model.safetensors")
            save_training_state(self.state_dict(rng), self.out_dir / "state.pt")
        if self.world > 1:
            dist.barrier()  # the others wait until the files exist (a rollback may read them)

    # -- rollback -------------------------------------------------------------------------
    def _rollback(self, what: str, value: float) -> None:
        path = self.out_dir / "state.pt"
        section = self.settings.section
        if not path.is_file() and not path.with_name("state.prev.pt").is_file():
            raise FloatingPointError(f"non-finite {what} ({value}) at step {self.step} before any checkpoint; "
                                     f"lower {section}.lr_g / lr_d")
        step = self.step
        self._since_save += 1
        since = self._since_save
        if since > self.settings.max_rollbacks:
            raise FloatingPointError(f"{since - 1} rollbacks in a row without progress (non-finite {what} at step "
                                     f"{step}); lower {section}.lr_g / lr_d and resume from {path}")
        self.resume(path)
        self._since_save = since
        self.rollbacks += 1
        if self.rank == 0:
            trim_history(self.out_dir / "history.jsonl", self.step)
        for opt in self.optimizers().values():  # k rollbacks since the checkpoint: its lrs x factor^k
            for group in opt.param_groups:
                group["lr"] *= self.settings.nan_lr_factor ** since
        lrs = ", ".join(f"{k} {o.param_groups[0]['lr']:.2e}" for k, o in self.optimizers().items())
        log.warning("non-finite %s (%s) at step %d: rolled back to step %d, learning rates x%s (now %s)",
                    what, value, step, self.step, self.settings.nan_lr_factor ** since, lrs)

    # -- logging --------------------------------------------------------------------------
    def _open_writer(self, tensorboard: bool) -> None:
        if not tensorboard or self.rank != 0:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional: history.jsonl always has the numbers
            log.info("tensorboard not installed: scalars go to history.jsonl only")
            return
        self._writer = SummaryWriter(str(self.out_dir / "logs"), purge_step=self.step + 1 if self.step else None)

    @property
    def writer(self):
        """The TensorBoard writer while :meth:`fit` runs on rank 0, else None."""
        return self._writer

    def log_scalars(self, values: dict[str, float]) -> None:
        """One line of ``history.jsonl`` at the current step, and TensorBoard (rank 0)."""
        if self.rank != 0 or not values:
            return
        with open(self.out_dir / "history.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, **values}) + "\n")
        if self._writer is not None:
            for k, v in values.items():
                self._writer.add_scalar(k, v, self.step)

    # -- the loop -------------------------------------------------------------------------
    def _batches(self) -> Iterator[Any]:
        """Batches with finite samples (agreed across ranks); others dropped and counted."""
        while True:
            batch = self.next_batch()
            tensors = batch if isinstance(batch, (tuple, list)) else (batch,)
            bad = any(torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all() for t in tensors)
            if self.any_rank(bad):
                self.bad_batches += 1
                log.warning("step %d: batch with NaN/Inf samples dropped (%d so far)", self.step, self.bad_batches)
                continue
            yield batch

    def fit(self, steps: int, progress: bool = True, tensorboard: bool = True,
            cpu_seconds: float | None = None) -> dict[str, float]:
        """Train until ``steps`` steps, or until this process has used ``cpu_seconds`` of CPU time
        in this call (then checkpoint and stop: equal-budget comparisons); returns the last logged
        losses and metrics. ``self.cpu_seconds`` (saved in state.pt, so it survives resumes and
        kills) is the CPU time the run has trained for in all.
        """
        s = self.settings
        target = steps
        cpu0 = time.process_time()
        self._cpu_mark = cpu0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            trim_history(self.out_dir / "history.jsonl", self.step)
        self._open_writer(tensorboard)
        show = self.rank == 0
        bar = tqdm(total=target, initial=self.step, desc=self.progress_name, unit="step",
                   disable=not (progress and show))
        plain = show and not progress
        start_step, t_start = self.step, time.perf_counter()
        t_log, step_log = t_start, self.step
        last: dict[str, float] = {}
        batches = self._batches()
        if plain and self.step < target:
            print(f"{self.progress_name}: step {self.step} of {target}", flush=True)
        try:
            while self.step < target:
                out = self.train_step(next(batches))
                bad = [(k, v) for k, v in out.items() if not torch.isfinite(v).all()]
                if self.any_rank(bool(bad)):
                    what, value = (bad[0][0], float(bad[0][1])) if bad else ("loss on another rank", float("nan"))
                    self._rollback(what, value)
                    bar.n = self.step
                    bar.refresh()
                    continue
                self.step += 1
                bar.update(1)
                line: dict[str, float] = {}  # one history line per logged step: losses and metrics
                if self.step % s.log_every == 0 or self.step == target:
                    now = time.perf_counter()
                    last = {k: float(v) for k, v in out.items()}
                    last["time/sec_per_step"] = (now - t_log) / max(self.step - step_log, 1)
                    t_log, step_log = now, self.step
                    line.update(last)
                    bar.set_postfix(self.postfix(last))
                    if plain:
                        rate = (self.step - start_step) / max(now - t_start, 1e-9)
                        eta = (target - self.step) / rate if rate > 0 else math.inf
                        budget = ""
                        if cpu_seconds is not None:  # a CPU budget usually ends the run before ``target``
                            used = time.process_time() - cpu0
                            eta = min(eta, max(cpu_seconds - used, 0.0) * (now - t_start) / max(used, 1e-9))
                            budget = f" CPU {used:.0f}/{cpu_seconds:.0f} s"
                        losses = " ".join(f"{k}={v}" for k, v in self.postfix(last).items())
                        print(f"{self.progress_name}: step {self.step}/{target} {losses} "
                              f"{rate:.2f} step/s{budget} ETA {_hms(eta)}", flush=True)
                if show and (self.step % s.eval_every == 0 or self.step == target):
                    metrics = self.validate()
                    line.update(metrics)
                    last.update(metrics)
                self.log_scalars(line)
                out_of_budget = cpu_seconds is not None and self.any_rank(time.process_time() - cpu0 >= cpu_seconds)
                if self.step % s.save_every == 0 or self.step == target or out_of_budget:
                    self.save()
                if out_of_budget:
                    log.info("%s: CPU budget of %.0f s used at step %d", self.progress_name, cpu_seconds, self.step)
                    break
        finally:
            if self._cpu_mark is not None:
                self.cpu_seconds += time.process_time() - self._cpu_mark
                self._cpu_mark = None
            bar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        return last


def _tuples(x: Any) -> Any:
    """Lists back to tuples (random/numpy RNG states are tuples; a round trip may give lists)."""
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    return x


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
