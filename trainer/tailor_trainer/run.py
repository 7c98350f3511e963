"""`tailor-train run`: one trial attempt, from config to result, checkpoint and export."""

import logging
import time

import numpy as np
import torch

from tailor_contract import ExitCode, Hyperparameters, TrialConfig
from tailor_contract.metrics import Selection
from tailor_trainer import checkpoint, ownership
from tailor_trainer.allowance import Allowance, Reserve, export_estimate
from tailor_trainer.config import hyperparameters_of, load_trial_config, metrics_port_of
from tailor_trainer.detection.metrics import detection_metrics
from tailor_trainer.distributed import (
    any_rank,
    barrier,
    init_world,
    least_on_any_rank,
    shutdown,
)
from tailor_trainer.errors import AttemptEnded, Diverged, Interrupted
from tailor_trainer.evaluate import detect, predict, score
from tailor_trainer.gpu_product import factor_of_this_gpu
from tailor_trainer.launch import launch, processes_wanted
from tailor_trainer.loop import hold_norm_statistics
from tailor_trainer.probe import (
    AfterBatch,
    Features,
    broadcast_probe,
    extract_features,
    fit_linear_probe,
    install_probe,
    probe_logits,
)
from tailor_trainer.progress import Progress
from tailor_trainer.result import finish, write_resolved_config
from tailor_trainer.schedule_fit import ScheduleFit
from tailor_trainer.signals import StopRequest
from tailor_trainer.storage import Storage, StorageError
from tailor_trainer.trial import (
    Loader,
    Trial,
    build_trial,
    checkpoint_state,
    restore,
    seed_everything,
)

log = logging.getLogger(__name__)


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
        if trial.world.is_main and trial.eval_loader is not None and trial.detection:
            single = not trial.world.distributed
            found = detect(
                trial.plain,
                trial.eval_loader,
                trial.dataset.evaluation,
                trial.world.device,
                trial.runner.channels_last,
                should_stop=lambda: single and self.stop.requested,
            )
            if found is None:
                raise self._interrupted_evaluation()
            scored = detection_metrics(found, len(trial.dataset.classes))
            books.metrics, books.confusion_matrix = scored.metrics, []
            books.per_class_ap = scored.per_class_ap
            self.progress.evaluated(books.step, books.metrics)
            self._keep_if_best()
        elif trial.world.is_main and trial.eval_loader is not None:
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
                raise self._interrupted_evaluation()
            self._record(probabilities, targets)
        barrier(trial.world)
        books.evaluated_at = books.step
        self.reserve.observe("evaluation", time.monotonic() - started)

    def _record(self, probabilities: np.ndarray, targets: np.ndarray) -> None:
        """Scores an evaluation of the current weights; keeps them if they are the best."""
        trial, books = self.trial, self.trial.books
        evaluation = score(probabilities, targets, trial.multilabel, trial.hp.threshold)
        books.metrics, books.confusion_matrix = evaluation.metrics, evaluation.confusion_matrix
        self.progress.evaluated(books.step, books.metrics)
        self._keep_if_best()

    def run_recipe(self, resumed: bool) -> str:
        """The recipe's work: "completed", or "allowance" when it stopped there.

        train: the training loop. linear_probe: the probe alone. probe_finetune: the
        probe, then the training loop from it. A resumed attempt never probes again:
        its checkpoint holds the probe (or what training made of it)."""
        recipe = self.trial.hp.recipe
        if recipe != "train":
            if resumed:
                log.info("resumed %s: the checkpoint holds the probe's weights", recipe)
            elif (stopped_by := self.probe()) != "completed":
                return stopped_by
            if recipe == "linear_probe":
                return "completed"
            # The probe was fitted on features under the pretrained normalisation
            # statistics: fine-tuning keeps them, so the classifier stays valid from the
            # first step (tiny batches would otherwise normalise with their own).
            hold_norm_statistics(self.trial.plain)
        return self.train()

    def probe(self) -> str:
        """Features of the evaluation split (main rank) and of the training split (every
        rank), a linear classifier fitted on them and written into the model, evaluated
        from the evaluation features. The allowance may cut the training pass short:
        the probe is fitted on the images done ("allowance"). A signal abandons it:
        there is nothing worth resuming, the next attempt computes it again."""
        trial, books, world = self.trial, self.trial.books, self.trial.world
        assert trial.probe_loader is not None
        single = not world.distributed
        started = time.monotonic()

        def extract(loader: Loader, after_batch: AfterBatch) -> Features:
            return extract_features(
                trial.plain,
                loader,
                world.device,
                trial.autocast,
                trial.runner.channels_last,
                after_batch,
            )

        def abandoned(split: str, done: int, total: int) -> Interrupted:
            return Interrupted(
                f"stopped by {self.stop.signal_name or 'a signal'} while computing the linear "
                f"probe's features ({done} of {total} {split} images); nothing to resume: "
                f"the next attempt computes them again"
            )

        evaluation: Features | None = None
        if world.is_main and trial.eval_loader is not None:
            # One process can stop here for a signal; several must stay in step.
            evaluation = extract(
                trial.eval_loader,
                lambda _, __: "signal" if single and self.stop.requested else None,
            )
            if evaluation.stopped:
                raise abandoned("evaluation", evaluation.count, evaluation.total)
            self.reserve.observe("evaluation", time.monotonic() - started)
            log.info(
                "probe: features of %d evaluation images in %.1fs",
                evaluation.count,
                time.monotonic() - started,
            )

        def after_train_batch(done: int, seconds: float) -> str | None:
            self.reserve.observe("step", seconds)
            short = self.allowance.wall_left() <= self.reserve.total()
            signal, allowance = any_rank(world, [self.stop.requested, short])
            return "signal" if signal else "allowance" if allowance else None

        since = time.monotonic()
        train = extract(trial.probe_loader, after_train_batch)
        if train.stopped == "signal":
            raise abandoned("training", train.count, train.total)
        log.info(
            "probe: features of %d of %d training images in %.1fs%s",
            train.count,
            train.total,
            time.monotonic() - since,
            " (stopped at the allowance)" if train.stopped else "",
        )
        since = time.monotonic()
        fit = fit_linear_probe(
            train.features,
            train.targets,
            len(trial.dataset.classes),
            trial.multilabel,
            trial.hp.probe_weight_decay,
        )
        fit = broadcast_probe(world, fit)
        install_probe(trial.plain, fit)
        trial.count_probe(fit.iterations, train.count)
        log.info(
            "probe: fitted in %d L-BFGS iterations (%.1fs), training loss %.4f",
            fit.iterations,
            time.monotonic() - since,
            fit.loss,
        )
        if evaluation is not None:
            logits = probe_logits(evaluation.features, fit)
            scores = torch.sigmoid(logits) if trial.multilabel else torch.softmax(logits, dim=1)
            self._record(scores.cpu().numpy(), evaluation.targets.cpu().numpy())
        barrier(world)
        books.evaluated_at = books.step
        if any_rank(world, [self.stop.requested])[0]:
            uri = self.save()  # the probe is done: a retry resumes from it
            raise Interrupted(
                f"stopped by {self.stop.signal_name or 'a signal'} after the linear probe; "
                f"checkpoint {uri}"
            )
        return "allowance" if train.stopped else "completed"

    def reason(self, stopped_by: str) -> str:
        """The result's reason, in the recipe's terms."""
        trial, books = self.trial, self.trial.books
        probe = (
            f"a linear probe fitted on the features of {books.probe_images} of "
            f"{len(trial.dataset.train)} training images ({books.probe_iterations} L-BFGS "
            f"iterations)"
        )
        recipe = trial.hp.recipe
        if recipe == "linear_probe":
            allowance = "stopped at the GPU-second allowance: " if stopped_by != "completed" else ""
            return allowance + probe
        if stopped_by == "completed":
            done = f"completed {trial.total_steps} steps"
            if books.fitted_steps is not None:
                done = (
                    f"completed {trial.total_steps} of {books.planned_steps} planned steps (the "
                    f"allowance fits no more at this pace: the learning-rate schedule was "
                    f"shortened to end there)"
                )
            return f"{probe}, then {done} of fine-tuning" if recipe == "probe_finetune" else done
        if recipe == "probe_finetune" and books.step == 0:
            return f"stopped at the GPU-second allowance after {probe}"
        return f"stopped at the GPU-second allowance after {books.step} steps"

    def _interrupted_evaluation(self) -> Interrupted:
        """A signal stopped an evaluation: checkpoint, and say where it stood."""
        uri = self.save()
        return Interrupted(
            f"stopped by {self.stop.signal_name} during evaluation at step "
            f"{self.trial.books.step}; checkpoint {uri}"
        )

    def _keep_if_best(self) -> None:
        trial, books = self.trial, self.trial.books
        value = books.metrics.get(trial.primary_metric)
        if value is None:
            return
        task, metric = trial.config.task, trial.primary_metric
        if books.best_value is not None:
            # One weights file is kept, so the rule decides between it and this one: a
            # difference the evaluation split cannot resolve goes to the lower log loss.
            best = (
                books.best_metrics if metric in books.best_metrics else {metric: books.best_value}
            )
            held = len(trial.dataset.evaluation)
            if Selection.of(task, metric, held).best([best, books.metrics]) == 0:
                return
        books.best_value, books.best_step = value, books.step
        books.best_metrics = dict(books.metrics)
        meta = {
            "model": trial.config.model,
            "task": trial.config.task,
            "classes": trial.dataset.class_names,
            "input_size": trial.data_config.size,
            "data_config": vars(trial.data_config),
            "metrics": books.metrics,
            **({"per_class_ap": books.per_class_ap} if trial.detection else {}),
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
        fit = ScheduleFit(
            books.step,
            trial.total_steps,
            trial.per_epoch,
            self._eval_every(),
            allowance_seconds=self.allowance.gpu_seconds / self.allowance.rate,
        )
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
                    self._fit_schedule(fit)
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

    def _fit_schedule(self, fit: ScheduleFit) -> None:
        """Ends the schedule where the allowance does, once the pace is measured."""
        trial, books, world = self.trial, self.trial.books, self.trial.world
        if fit.decided:
            return
        now = time.monotonic()
        ready = fit.ready(books.step, now)
        if world.distributed:
            ready = any_rank(world, [ready])[0]  # decide together, at the same step
        if not ready:
            return
        seconds_left = self.allowance.wall_left() - self.reserve.total()
        # The slowest rank's fit is everyone's.
        total = least_on_any_rank(world, fit.decide(books.step, now, seconds_left))
        if total >= trial.total_steps:
            return
        trial.shorten(total)
        self.progress.total_steps = total
        log.info(
            "the allowance fits %d of the %d planned steps at this pace: the learning-rate "
            "schedule now ends there",
            total,
            books.planned_steps,
        )

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
    # The pod was created before it was scheduled: calibration_factor is the highest the
    # job may meet. The factor of the GPU it landed on is what the ledger charges.
    choice = factor_of_this_gpu(config.calibration_factor, config.calibration_factors)
    if world.is_main:
        log.info("calibration factor %g: %s", choice.factor, choice.reason)
    allowance = Allowance(config.allowance_gpu_seconds, config.gpus, choice.factor, started)
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
        # Before any data or model is loaded: the output must be this job's, and an
        # implicit resume this trial's own checkpoint (else ConfigError, nothing used).
        if config.job_output:
            ownership.verify(storage, config.job_output, config.job_uid)
        point = checkpoint.resume_point(storage, config)
        resumed = point is not None
        trial = build_trial(config, hp, world, storage)
        if point is not None:
            restore(trial, point.state, point.uri)
            point = None  # its tensors are in the model now: no second copy
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
        stopped_by = attempt.run_recipe(resumed=resumed)
        if trial.books.evaluated_at != trial.books.step:
            attempt.evaluate()
        attempt.save()
        exported = None
        if config.export and world.is_main:
            from tailor_trainer.exporter import attempt_export, export_trial
            from tailor_trainer.report.collect import write_export_report

            # Each attempt its own folder: a bundle once reported is never overwritten, so
            # the operator's recorded digest always names what is there (a promotion's
            # export killed half-way cannot mix two rungs' files).
            exported = export_trial(
                storage, config.output, destination=attempt_export(config.output, config.attempt)
            )
            write_export_report(trial, exported.uri, should_stop=lambda: stop.requested)
        reason = attempt.reason(stopped_by)
        return end(ExitCode.SUCCESS, stopped_by, reason, exported=exported)
    except AttemptEnded as error:
        return end(error.code, error.stopped_by, error.reason, problems=error.problems)
    except StorageError as error:
        return end(ExitCode.RETRYABLE, "storage", f"storage error: {error}")
    finally:
        if progress is not None:
            progress.close()
        stop.uninstall()
        shutdown(world)
