"""What a training run reports as it goes: metrics.csv, TensorBoard, a PNG plot, and a
live progress line (rich).

metrics.csv is always written. TensorBoard (the `tensorboard` package), the plot
(matplotlib) and the live line (rich) come with the `train` extra; without them a run
trains the same and writes metrics.csv alone."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Optional, TextIO

from .networks import installed
from .rundir import RunDir


class Plot:
    """difficulty, success and reward against time and against env steps, as a PNG,
    rewritten (atomically) at most every `every` seconds."""

    def __init__(self, path: Path, every: float = 10.0):
        self.path = path
        self.every = every
        self.last = time.monotonic()
        self.rows: list[dict] = []
        self.drawn = 0

    def add(self, row: dict, force: bool = False) -> None:
        """Add a row; redraw if `every` seconds have passed since the last drawing."""
        self.rows.append(row)
        if force or time.monotonic() - self.last >= self.every:
            self.draw()

    def draw_pending(self) -> None:
        """Draw the rows added since the last drawing, if any."""
        if len(self.rows) > self.drawn:
            self.draw()

    def draw(self) -> None:
        """Draw every row now (a matplotlib Figure without pyplot: no global state, and
        fast enough to draw at the end of a time-limited run)."""
        from matplotlib.figure import Figure
        fig = Figure(figsize=(10, 8))
        axes = fig.subplots(3, 2, sharex="col")
        for col, (key, label) in enumerate((("elapsed", "seconds"), ("total_env_steps", "env steps"))):
            x = [r[key] for r in self.rows]
            for row, (metric, name) in enumerate((("difficulty", "difficulty"), ("success_rate", "success"),
                                                  ("mean_return", "return"))):
                ax = axes[row][col]
                ax.plot(x, [r[metric] for r in self.rows], lw=1.5)
                ax.set_ylabel(name)
                ax.grid(alpha=0.3)
            axes[2][col].set_xlabel(label)
            if key == "total_env_steps":
                axes[2][col].ticklabel_format(style="sci", axis="x", scilimits=(0, 0))
        fig.subplots_adjust(left=0.08, right=0.97, top=0.97, bottom=0.07, hspace=0.12, wspace=0.22)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.png")
        fig.savefig(tmp, dpi=80)
        os.replace(tmp, self.path)
        self.drawn, self.last = len(self.rows), time.monotonic()


class EventWriter:
    """TensorBoard scalars written with the `tensorboard` package alone (no torch)."""

    def __init__(self, logdir: Path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        self.events = EventFileWriter(str(logdir))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self.events.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def close(self) -> None:
        self.events.close()


class NoWriter:
    """Where scalars go when TensorBoard is not installed."""

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        pass

    def close(self) -> None:
        pass


class Monitor:
    """Sends each iteration's stats to every sink; `close` flushes them."""

    def __init__(self, run: RunDir, stream: TextIO, time_limit: Optional[float], diff_max: int,
                 live: Optional[bool] = None):
        self.run = run
        self.writer = EventWriter(run.path / "tensorboard") if installed("tensorboard") else NoWriter()
        self.plot = None
        if installed("matplotlib"):
            import matplotlib.figure  # noqa: F401  (imported now, before a time limit starts counting)
            self.plot = Plot(run.path / "progress.png")
        self.time_limit = time_limit
        self.diff_max = diff_max
        self.start = time.perf_counter()
        self.stream = stream
        self.live = (stream.isatty() if live is None else live) and installed("rich")
        self.progress = None
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                                     console=Console(file=stream), transient=False)
            self.task = self.progress.add_task("starting", total=diff_max)
            self.progress.start()

    def record(self, row: dict) -> None:
        """Write one iteration's row to every sink (NaN, for no value, is left out of
        TensorBoard and shown in words on the progress line)."""
        self.run.append_metrics(row)
        step = row["total_env_steps"]
        for key in ("difficulty", "success_rate", "mean_return", "mean_length"):
            self._scalar(f"charts/{key}", row[key], step)
        for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "explained_variance"):
            if key in row:
                self._scalar(f"losses/{key}", row[key], step)
        for key in ("vs_random", "vs_mcts", "vs_random_win", "vs_random_draw", "vs_random_loss", "vs_mcts_win",
                    "vs_mcts_draw", "vs_mcts_loss"):
            if key in row:
                self._scalar(f"arena/{key}", row[key], step)
        self._scalar("charts/steps_per_second", row["env_steps"] / max(row["seconds"], 1e-9), step)
        if self.plot is not None:
            self.plot.add(row)
        text = self.progress_line(row, time.perf_counter() - self.start)
        if self.progress is not None:
            self.progress.update(self.task, completed=row["difficulty"], description=text)
        else:
            print(text, file=self.stream, flush=True)

    def _scalar(self, tag: str, value: float, step: int) -> None:
        if not (isinstance(value, float) and math.isnan(value)):
            self.writer.add_scalar(tag, value, step)

    def progress_line(self, row: dict, elapsed: float) -> str:
        """The line shown for an iteration: its difficulty, success and return (or that no
        episode finished in it; two-player games: the arena's scores against random play and
        pure MCTS, with win/draw/loss rates), steps/s, elapsed time and time left."""
        rate = row["env_steps"] / max(row["seconds"], 1e-9)
        left = f"{max(self.time_limit - elapsed, 0):6.0f} s left" if self.time_limit else ""
        success, ret = row["success_rate"], row["mean_return"]
        if "vs_random" in row:
            # Two-player self-play: the arena's scores and win/draw/loss rates.
            parts = []
            for key, name in (("vs_random", "random"), ("vs_mcts", "MCTS")):
                if key not in row or math.isnan(row[key]):
                    parts.append(f"vs {name}  n/a")
                elif key + "_win" in row:
                    parts.append(f"vs {name} {row[key]:.2f} (W {row[key + '_win']:.2f} D {row[key + '_draw']:.2f} "
                                 f"L {row[key + '_loss']:.2f})")
                else:  # AlphaZero's arenas report the score alone
                    parts.append(f"vs {name} {row[key]:.2f}")
            outcome = "  ".join(parts)
        elif math.isnan(success) and math.isnan(ret):
            outcome = "no episode finished in this iteration"
        else:
            outcome = (("success   n/a" if math.isnan(success) else f"success {success:5.2f}") + "  " +
                       ("return    n/a" if math.isnan(ret) else f"return {ret:+.3f}"))
        cut = "  (cut short by the time limit)" if row.get("cut_short") else ""
        return (f"it {row['iteration']:4d}  difficulty {row['difficulty']:3d}  {outcome}  {rate:9,.0f} steps/s  "
                f"{elapsed:7.1f} s {left}{cut}")

    def close(self) -> None:
        if self.plot is not None:
            self.plot.draw_pending()
        self.writer.close()
        if self.progress is not None:
            self.progress.stop()
