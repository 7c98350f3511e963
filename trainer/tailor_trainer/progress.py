"""Progress a person can read in the logs, and the same numbers on a Prometheus endpoint."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from tailor_trainer.allowance import Allowance

log = logging.getLogger("tailor_trainer.progress")


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


@dataclass
class _Window:
    started: float
    images: int = 0


class Progress:
    """One per process; only the main rank logs and serves metrics."""

    def __init__(
        self,
        allowance: Allowance,
        total_steps: int,
        log_every: int,
        port: int = 0,
        enabled: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.allowance = allowance
        self.total_steps = total_steps
        self.log_every = log_every
        self.enabled = enabled
        self.clock = clock or time.monotonic
        self.window = _Window(self.clock())
        self.images_per_second = 0.0
        self.batch = 0
        self.last_log = self.clock()
        self.registry = CollectorRegistry()
        r = self.registry
        self.g_step = Gauge("tailor_trainer_step", "optimizer steps done", registry=r)
        self.g_epoch = Gauge("tailor_trainer_epoch", "epochs done (fractional)", registry=r)
        self.g_loss = Gauge("tailor_trainer_loss", "training loss of the last step", registry=r)
        self.g_lr = Gauge("tailor_trainer_learning_rate", "current learning rate", registry=r)
        self.g_speed = Gauge(
            "tailor_trainer_images_per_second", "training images per second, all ranks", registry=r
        )
        self.g_used = Gauge(
            "tailor_trainer_gpu_seconds", "calibrated GPU-seconds used by this attempt", registry=r
        )
        self.g_allowance = Gauge(
            "tailor_trainer_allowance_gpu_seconds", "this attempt's allowance", registry=r
        )
        self.g_eta = Gauge(
            "tailor_trainer_eta_seconds", "wall seconds to the last step", registry=r
        )
        self.c_images = Counter("tailor_trainer_images", "training images seen", registry=r)
        self.g_metric = Gauge(
            "tailor_trainer_eval_metric", "last evaluation metrics", ["metric"], registry=r
        )
        self.g_allowance.set(allowance.gpu_seconds)
        self.server = None
        if enabled and port:
            self.server, _ = start_http_server(port, registry=self.registry)
            log.info("Prometheus metrics on port %d", port)

    def step(self, step: int, epoch: float, loss: float, lr: float, images: int) -> None:
        """Record one step (images: global batch); log every log_every steps or minute."""
        now = self.clock()
        self.window.images += images
        self.batch = images
        self.c_images.inc(images)
        elapsed = now - self.window.started
        if elapsed > 0:
            self.images_per_second = self.window.images / elapsed
        if elapsed >= 30.0:
            # A sliding start keeps the speed current without jumping on every step.
            self.window = _Window(now - elapsed / 2, int(self.window.images / 2))
        self.g_step.set(step)
        self.g_epoch.set(epoch)
        self.g_loss.set(loss)
        self.g_lr.set(lr)
        self.g_speed.set(self.images_per_second)
        self.g_used.set(self.allowance.used())
        eta = self.eta(step)
        self.g_eta.set(eta)
        due = step % self.log_every == 0 or now - self.last_log >= 60 or step == self.total_steps
        if self.enabled and due:
            self.last_log = now
            log.info(
                "epoch %.2f step %d/%d loss %.4f lr %.3g %.1f img/s | GPU-s %.0f/%.0f | "
                "eta %s, allowance left %s",
                epoch,
                step,
                self.total_steps,
                loss,
                lr,
                self.images_per_second,
                self.allowance.used(),
                self.allowance.gpu_seconds,
                duration(eta),
                duration(self.allowance.wall_left()),
            )

    def eta(self, step: int) -> float:
        """Wall seconds to the last step at the current speed (0 until speed is known)."""
        if not self.images_per_second:
            return 0.0
        return max(0, self.total_steps - step) * self.batch / self.images_per_second

    def evaluated(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.g_metric.labels(metric=name).set(value)
        if self.enabled:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
            log.info("evaluation at step %d: %s", step, shown)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
