"""`tailor-train run`: one trial attempt, from config to result, checkpoint and export."""

import logging
import time

import torch

from tailor_contract import ExitCode, Hyperparameters, TrialConfig
from tailor_trainer import checkpoint
from tailor_trainer.allowance import Allowance, Reserve, export_estimate
from tailor_trainer.config import hyperparameters_of, load_trial_config, metrics_port_of
from tailor_trainer.distributed import any_rank, barrier, init_world, shutdown
from tailor_trainer.errors import AttemptEnded, Diverged, Interrupted
from tailor_trainer.evaluate import predict, score
from tailor_trainer.launch import launch, processes_wanted
from tailor_trainer.progress import Progress
from tailor_trainer.result import finish, write_resolved_config
from tailor_trainer.signals import StopRequest
from tailor_trainer.storage import Storage, StorageError
from tailor_trainer.trial import Trial, build_trial, checkpoint_state, restore, seed_everything

log = logging.getLogger(__name__)
LOWER_IS_BETTER = frozenset({"calibration_ece"})


class Attempt:
    """The duties around the step: sync, stop decisions, evaluation, checkpoints."""

    def __init__(
        self, trial: Trial, allowance: Allowance, stop: StopRequest, progress: Progress
    ) -> None:
        self.trial = trial
        self.allowance = allowance
        self.stop = stop
        self.progress = progress
        parameters = sum(p.numel() * p.element_size() for p in trial.plain.parameters())
        self.reserve = Reserve(
            checkpoint_bytes=3 * parameters,  # weights and AdamW's two moments
            eval_images=len(trial.dataset.evaluation),
            batch=trial.global_batch,
        )
        # Reading the loss syncs the GPU; on one process a pending signal forces it.
        self.sync_every = 5 if trial.world.device.type == "cuda" else 1
        self.checkpoint_uri: str | None = None
        if trial.config.export:
            self.reserve.export = export_estimate(parameters)

    def save(self) -> str:
        started = time.monotonic()
        trial = self.trial
        if trial.world.is_main:
            state = checkpoint_state(trial, trial.books.gpu_seconds_before + self.allowance.used())
            self.checkpoint_uri = checkpoint.save_last(trial.storage, trial.config.output, state)
        barrier(trial.world)
        self.reserve.observe("checkpoint", time.monotonic() - started)
        return self.checkpoint_uri or ""

    def evaluate(self) -> None:
        trial, books = self.trial, self.trial.books
        started = time.monotonic()
        if trial.world.is_main and trial.eval_loader is not None:
            # One process can drop an evaluation for a signal; ranks must stay in step.
            single = not trial.world.distributed
            probabilities, targets = predict(
                trial.plain,
                trial.eval_loader,
                trial.world.device,
                trial.autocast,
                trial.multilabel,
                trial.runner.channels_last,
                should_stop=lambda: single and self.stop.requested,
            )
            if probabilities is None:
                uri = self.save()
                raise Interrupted(
                    f"stopped by {self.stop.signal_name} during evaluation at step "
                    f"{books.step}; checkpoint {uri}"
                )
            evaluation = score(probabilities, targets, trial.multilabel, trial.hp.threshold)
            books.metrics, books.confusion_matrix = evaluation.metrics, evaluation.confusion_matrix
            self.progress.evaluated(books.step, books.metrics)
            self._keep_if_best()
        barrier(trial.world)
        books.evaluated_at = books.step
        self.reserve.observe("evaluation", time.monotonic() - started)

    def _keep_if_best(self) -> None:
        trial, books = self.trial, self.trial.books
        value = books.metrics.get(trial.primary_metric)
        if value is None:
            return
        sign = -1.0 if trial.primary_metric in LOWER_IS_BETTER else 1.0
        if books.best_value is not None and sign * value <= sign * books.best_value:
            return
        books.best_value, books.best_step = value, books.step
        meta = {
            "model": trial.config.model,
            "task": trial.config.task,
            "classes": trial.dataset.class_names,
            "input_size": trial.data_config.size,
            "data_config": vars(trial.data_config),
            "metrics": books.metrics,
            "step": books.step,
            "primary_metric": trial.primary_metric,
            "dataset_digest": trial.dataset.digest,
            "gpu_seconds": round(books.gpu_seconds_before + self.allowance.used(), 3),
            "trial": trial.config.model_dump(mode="json"),
            "hyperparameters": trial.hp.model_dump(mode="json"),
        }
        checkpoint.save_best(trial.storage, trial.config.output, trial.plain, meta)

    def _sync(self, pending: list[torch.Tensor], since: float) -> tuple[bool, bool]:
        """Read the pending losses, decide together: (stop for a signal, stop for allowance)."""
        trial, books = self.trial, self.trial.books
        losses = torch.stack(pending).float().cpu().tolist()
        self.reserve.observe("step", (time.monotonic() - since) / len(losses))
        reason = None
        for offset, loss in enumerate(losses):
            reason = reason or trial.monitor.update(loss, books.step - len(losses) + offset + 1)
        short = self.allowance.wall_left() <= self.reserve.total()
        signal, allowance, diverged = any_rank(
            trial.world, [self.stop.requested, short, reason is not None]
        )
        self.progress.step(
            books.step,
            books.step / trial.per_epoch,
            losses[-1],
            trial.runner.lr,
            len(losses) * trial.global_batch,
        )
        if diverged:
            raise Diverged(reason or "training diverged on another process")
        return signal, allowance

    def train(self) -> str:
        """Steps until done ("completed") or out of allowance ("allowance")."""
        trial, books = self.trial, self.trial.books
        pending: list[torch.Tensor] = []
        since = last_save = time.monotonic()
        if self.stop.requested:
            self.save()
            raise Interrupted(f"stopped by {self.stop.signal_name} before the first step")
        while books.step < trial.total_steps:
            trial.sampler.set_epoch(books.epoch, books.batch_in_epoch)
            if trial.train_loader.generator is not None:  # worker seeds, per epoch
                trial.train_loader.generator.manual_seed(trial.config.seed * 100_003 + books.epoch)
            for images, targets in trial.train_loader:
                pending.append(trial.runner(images, targets))
                books.step += 1
                books.batch_in_epoch += 1
                books.images_seen += trial.global_batch
                last = books.step == trial.total_steps
                local_stop = self.stop.requested and not trial.world.distributed
                if last or local_stop or books.step % self.sync_every == 0:
                    signal, out_of_time = self._sync(pending, since)
                    pending, since = [], time.monotonic()
                    if signal:
                        uri = self.save()
                        raise Interrupted(
                            f"stopped by {self.stop.signal_name or 'a signal'} at step "
                            f"{books.step}; checkpoint {uri}"
                        )
                    if out_of_time:
                        return "allowance"
                if books.step % self._eval_every() == 0 and not last:
                    self.evaluate()
                if time.monotonic() - last_save >= trial.hp.checkpoint_every_seconds:
                    self.save()
                    last_save = time.monotonic()
                if last:
                    break
            if books.batch_in_epoch >= trial.per_epoch:
                books.epoch, books.batch_in_epoch = books.epoch + 1, 0
        return "completed"

    def _eval_every(self) -> int:
        return max(1, round(self.trial.hp.eval_every_epochs * self.trial.per_epoch))


def run_from_file(path: str, started: float) -> int:
    config = load_trial_config(path)
    hp = hyperparameters_of(config)
    if processes_wanted(config) > 1:
        return launch(path, processes_wanted(config), started)
    return run(config, hp, started)


def run(config: TrialConfig, hp: Hyperparameters, started: float) -> int:
    world = init_world()
    stop = StopRequest().install()
    seed_everything(config.seed, world.rank)
    storage = Storage(config.dataset.endpoint)
    allowance = Allowance(
        config.allowance_gpu_seconds, config.gpus, config.calibration_factor, started
    )
    trial: Trial | None = None
    progress: Progress | None = None
    attempt: Attempt | None = None

    def end(code: ExitCode, stopped_by: str, reason: str, **extra: object) -> int:
        if world.is_main:
            finish(
                trial,
                config.output,
                config.attempt,
                storage,
                allowance,
                code,
                stopped_by,
                reason,
                checkpoint_uri=attempt.checkpoint_uri if attempt else None,
                **extra,  # type: ignore[arg-type]
            )
        return int(code)

    try:
        trial = build_trial(config, hp, world, storage)
        resume = checkpoint.find_resume(storage, config.output, config.resume)
        if resume:
            restore(trial, checkpoint.load(storage, resume), resume)
        progress = Progress(
            allowance,
            trial.total_steps,
            hp.log_every_steps,
            metrics_port_of(config),
            enabled=world.is_main,
        )
        if world.is_main:
            write_resolved_config(trial)
        attempt = Attempt(trial, allowance, stop, progress)
        stopped_by = attempt.train()
        if trial.books.evaluated_at != trial.books.step:
            attempt.evaluate()
        attempt.save()
        export_uri = None
        if config.export and world.is_main:
            from tailor_trainer.exporter import export_trial

            export_uri = export_trial(storage, config.output)
        reason = (
            f"completed {trial.total_steps} steps"
            if stopped_by == "completed"
            else f"stopped at the GPU-second allowance after {trial.books.step} steps"
        )
        return end(ExitCode.SUCCESS, stopped_by, reason, export_uri=export_uri)
    except AttemptEnded as error:
        return end(error.code, error.stopped_by, error.reason, problems=error.problems)
    except StorageError as error:
        return end(ExitCode.RETRYABLE, "storage", f"storage error: {error}")
    finally:
        if progress is not None:
            progress.close()
        stop.uninstall()
        shutdown(world)
