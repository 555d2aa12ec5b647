"""Reproduce published meta-RL results from the shipped presets, on the fixed held-out tasks.

Run by hand (not in CI)::

    python benchmarks/reproduce.py --dry-run                 # the plan: settings, seeds, budgets
    python benchmarks/reproduce.py --only 'rl2-bandit-*n100' --jobs 2
    python benchmarks/reproduce.py --table-only              # rewrite RESULTS.md and the plot

For every (setting, seed) of :data:`SETTINGS` it trains ``metarl train AGENT --config PRESET
--seed S --threads 1`` in chunks (``--resume``) into ``results-reproduce/<setting>/s<seed>/run``,
and after the chunks that cross 1/4, 1/2, 3/4 and all of the budget it scores the newest
checkpoint with ``metarl eval`` on the held-out tasks (evaluation time is outside the training
clock: ``wall_s`` is the trainer's own, which counts training iterations only). The small per-seed
result ``results-reproduce/<setting>/s<seed>.json`` (learning curve, final score, the classic
baselines that ``metarl eval`` computes on the same held-out tasks, load average) is what the table
is built from; the run directories are git-ignored. A seed whose result says ``done`` is skipped;
a half-done one resumes from its checkpoint; one whose preset changed (its name or a value it
trains with; its prose may change freely) trains again from scratch. Chunks stop where a preset
changes its cost per iteration (RL²'s ``late_iteration``) and measure the new cost before
planning past it. ``--jobs 2`` trains two seeds at once (one torch thread each).

The table goes between the markers of ``benchmarks/RESULTS.md`` (one table, rewritten each time);
the curves (held-out score vs training wall time) go to ``results-reproduce/curves.png``.

Adding an agent (ProMP, E-MAML, Reptile, PEARL, ...) is one :class:`Setting` entry: its agent name
for ``metarl train``, its preset, seeds, budget, the metric read from ``eval.json``, a target rule
and the published value with its citation.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results-reproduce"
RESULTS_MD = HERE / "RESULTS.md"
BEGIN = "<!-- reproduce:begin (written by benchmarks/reproduce.py; do not edit by hand) -->"
END = "<!-- reproduce:end -->"
#: Fractions of the budget after which the newest checkpoint is scored (the learning curve).
CURVE_FRACTIONS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
#: A run may end this far past its wall budget (training stops on whole iterations) and still count.
WALL_TOLERANCE = 0.05
METRICS = ("trial_return", "step1", "last")
RL2_T1 = "Duan et al. 2016 (RL²), Table 1"
RL2_T2 = "Duan et al. 2016 (RL²), Table 2"


class SettingError(ValueError):
    """A SETTINGS entry (or a result file) that cannot be run or read; names the culprit."""


@dataclass(frozen=True)
class Target:
    """What a row must reach: ``score OP reference``.

    ``reference`` is a baseline name from ``eval.json`` (``"ucb1"``, ``"psrl"``), ``"best_classic"``
    (the best baseline other than random) or a number (a published value). ``None``: no pass/fail
    (the curve is recorded, e.g. a result only read off a figure).
    """

    op: str = ">="
    reference: str | float | None = None

    def describe(self) -> str:
        if self.reference is None:
            return "curve recorded (no numeric target)"
        ref = self.reference if isinstance(self.reference, str) else f"{self.reference:g}"
        return f"{self.op} {ref}"


@dataclass(frozen=True)
class Setting:
    """One row of the reproduction table (see the module docstring)."""

    name: str
    agent: str
    preset: str
    seeds: tuple[int, ...]
    target: Target
    published: str
    citation: str
    metric: str = "trial_return"
    wall_minutes: float | None = None
    iterations: int | None = None
    run: bool = True
    note: str = ""
    eval_args: tuple[str, ...] = ()
    eval_trials: int | None = None
    """Trials per held-out task for the scores (``metarl eval --trials-per-task``); None: the
    preset's ``eval_trials_per_task``. Part of the fingerprint: a change re-scores the stored
    checkpoints without training again."""
    eval_relabel: bool | None = None
    """RL²: score each trial on a randomly relabeled copy of its held-out task (``metarl eval
    --relabel``, ``RL2Config.eval_relabel``); None: the run's setting. Part of the fingerprint like
    ``eval_trials``."""
    tried: str = ""
    """What was tried to reach the target (shown beside a miss)."""
    allowed_minutes: float | None = None
    """The issue's time limit for the target when the row trains on a shorter ``wall_minutes``
    (reaching the target in less is meeting it within the limit); the table shows both."""


#: What issue 11 tried for the RL² presets (the chosen recipe last); see each preset's ``source``.
RL2_TRIED = ("paper-sized GRU 256 / 1024 trials (random level after 25 min); GRU 64 / 256 trials / lr 3e-3 "
             "(bench_rl2.py); GRU 64 / 128 trials / lr 3e-3; GRU 64 / 64 trials / lr 6e-3 (stopped after 70 s, slower start); chosen: GRU 64 / "
             "128 trials / lr 6e-3 (best training-task curve on k=10, n=100); afterwards γ 1.0 (k=10, seed 0, "
             "1,014 iterations on a quiet core: training-task trial return 79.11 vs 79.76 for γ 0.99 over the last "
             "100 iterations, lower at every point; rejected); entropy 0.03 (k=10, seed 0, 10 min on a quiet core: "
             "training-task trial return 77.6 in minute 10 against 79.8 / 78.9 / 79.6 for the preset's three seeds, "
             "entropy 0.74 vs 0.15 nats at the end; rejected)")

#: k=5 and k=10 at n=100 (2026-11-24, third session): what followed, on k=10 seed 0's training-task curve.
RL2_LATE_TRIED = (RL2_TRIED + "; then (k=10, seed 0, 10 min on a quiet core, training-task trial return in minute 10; "
                  "the recipe's three seeds 79.8 / 78.9 / 79.6): γ 0.997 79.9; time_input 80.6; time_input + γ 0.997 80.6; "
                  "a late phase from iteration 300 of 1024 trials at lr 1e-3 80.4 (k=5: continuing the recipe's trained seed 0 "
                  "that way lifted it from 76.7 to 77.7 in 6 min, its own batch and step stayed at 76.7); time_input at k=5 76.3 "
                  "(no gain there); chosen: time_input + the late phase from iteration 400, 81.3 (RESULTS.md, RL² late phase "
                  "and time input); afterwards, continuing k=10 seed 0's trained run for 5 min with 1024 trials / lr 1e-3 or "
                  "4096 / 5e-4: both level at ~81.7 training-task trial return (tuned UCB1 81.73 on training tasks), so a "
                  "bigger late batch does not close it (RESULTS.md, fourth session); then (k=10, seed 0, training tasks, "
                  "RESULTS.md, sixth session): late_gamma 1.0 from iteration 400, 80.82 against the preset's 81.07 at "
                  "iterations 460-480 (rejected); GRU 128, 73.8 against 76.9 over iterations 160-200, at a slower pace per "
                  "iteration (stopped, rejected); run side by side for 10 min, minute-10 training-task trial return 80.6 with 2 "
                  "minibatches instead of 4 and 80.3 with lr 1e-2 instead of 6e-3, against 80.8 for the preset's first "
                  "400 iterations run the same day (rejected)")

#: Shown beside the k=10, n=100 row: its verdict owes more to the day's machine than to the preset.
RL2_K10_NOTE = ("run on 2026-11-24, seventh session, when this machine gave 710-720 iterations in the 10 minutes against "
                "551-553 for the previous preset's rows, trained on 2026-11-24, third session; at ~552 iterations these seeds' "
                "held-out curves interpolate to ~81.7, below UCB1: RESULTS.md, seventh session")

#: k=10, n=100 only (2026-11-24, seventh session): k=5 was met with the late step of 1e-3 and keeps it.
RL2_K10_TRIED = (RL2_LATE_TRIED + "; then late_learning_rate 6e-3 (the early step) instead of 1e-3 (seed 0, training "
                 "tasks, 10 min side by side with the preset: the same bits to iteration 400, then 0.3-0.5 higher in "
                 "every 20-iteration window, 81.27 against 81.04 at iterations 640-659; chosen; RESULTS.md, seventh "
                 "session)")

RL2_K50_TRIED = (RL2_TRIED + "; the late phase and time_input chosen afterwards for k=5 and 10 were not tried at k=50 "
                 "(this row was met without them and was not re-run)")

RL2_N10_TRIED = ("the n=100 recipe with 512 trials per iteration for 5 of the 20 minutes allowed (held-out, 200 relabeled "
                 "trials per task: k=10 6.698 against Gittins 6.729, k=50 6.666 against Gittins 6.701; before relabeling "
                 "6.716 and 6.715, met by the mean of seeds that spread 0.57-0.60); then k=5's late phase (from iteration "
                 "600, 4096 trials at lr 1e-3) carried over untuned, with the 20 minutes; the ceiling (RESULTS.md, sixth "
                 "session): the exact Bayes-optimal policy scores 6.730 (k=10) and 6.700 (k=50) on the same held-out "
                 "copies, Gittins 6.729 and 6.701, and RL²'s training-task trial return ends within 0.35% of the exact "
                 "prior-expected optimum 6.714 (Gittins 6.712): at n=10 the target asks for the optimum")

#: k=5, n=10 (2026-11-24, fourth session), on seed 0's training-task curve.
RL2_K5N10_TRIED = ("the n=100 recipe with 512 trials per iteration, 5 min (6.998 held-out at 20 trials per task, 7.077 at "
                   "200, against Gittins 7.175); then a late phase from iteration 600 of 4096 trials at lr 1e-3 (training-task "
                   "trial return in minutes 5-8 6.64 against 6.61-6.63 without; Gittins 6.658 on 20,000 training tasks) "
                   "with the 20 minutes allowed; entropy_coef 0 in that phase: no change (continuing seed 0's 5-min run: "
                   "6.637 / 6.640 / 6.647 vs 6.634 / 6.639 / 6.648 per minute); chosen: the late phase, 20 min; the "
                   "ceiling (RESULTS.md, sixth session): the exact Bayes-optimal policy scores 7.191 on the same held-out "
                   "copies (Gittins 7.184), and RL²'s training-task trial return ends at 6.639-6.658 against the exact "
                   "prior-expected optimum 6.660 (Gittins 6.658)")

RL2_N500_TRIED = ("the preset (the n=100 recipe with 32 trials of 500 pulls, lr 3e-3, γ 0.99); γ 1.0 (the table's "
                  "undiscounted objective; seed 0, stopped at 10 of its 20 min: training-task trial return ~300 vs "
                  "~370 for γ 0.99 at equal wall time, so rejected; results-reproduce/rl2-bandit-k5-n500/"
                  "tried-gamma1-s0-partial.json); held-out with 32 trials per iteration (200 relabeled trials per "
                  "task): see RESULTS.md, fifth session; then (seed 0, one core each, training-task trial return): "
                  "128 trials per iteration, ~387 by minute 8 and 380-387 to minute 12 against a peak of 376 in 20 "
                  "min with 32 (chosen); on top of it a late phase from iteration 200 of 512 trials at lr 1e-3, "
                  "383-387 in minutes 10-20 (no gain); γ 0.997, ~350 at minutes 8-10 (rejected); late_gamma 0.999 "
                  "from iteration 150, 358-377 against 379-390 at the same iterations 150-279 (rejected; RESULTS.md, "
                  "sixth session)")


RL2_MDP_TRIED = ("the n=100 bandit recipe (GRU 64 / 128 trials / lr 6e-3 / entropy 0.01 / GAE 0.95), kept after a tuning "
                 "round on n=10 training tasks (seed 0, one core each, training-task trial return in minute 5 / at 3 min): "
                 "the preset 119.3 / 116.9; GAE λ 0.3 117.1 / 114.7; GRU 128 117.3 / 113.2; GRU 256 114.9 / 110.5; "
                 "entropy 0.05 111.8 / 110.9; entropy 0 116.9 / 115.8; lr 1e-2 — / 116.2; 256 trials — / 116.2 "
                 "(RESULTS.md, RL² tabular MDPs: tuning round)")

RL2_MDP10_TRIED = (RL2_MDP_TRIED + "; then a late phase from iteration 550 of 1024 trials at lr 1e-3 (continuing seed 0's "
                   "trained 20-min run that way: training-task trial return 120 → 122.7 in 3 min; chosen; RESULTS.md, RL² late "
                   "phase and time input); time_input (seed 0, training tasks: 117.1 in minute 5 against the preset's "
                   "119.3; rejected; RESULTS.md, fifth session); then (seed 0, training tasks, one core each, two at a "
                   "time, training-task trial return in minute 8, the preset 123.8 the same day; RESULTS.md, seventh "
                   "session): the previous observation as a second GRU input 122.7; GRU 128 118.2; GRU 256 with the late "
                   "phase from iteration 300 116.6; update_epochs 2 119.8; the late phase from iteration 300 122.7; "
                   "reward_scale 0.03 118.0 and 0.3 103.0 (collapsed); value_coef 0.1 119.1; late_learning_rate 3e-3 "
                   "124.8 and 6e-3 125.1 (125.8 in minute 10); 512 late trials at 3e-3 125.0; chosen: late_learning_rate "
                   "6e-3, the early step")

RL2_MDP25_TRIED = (RL2_MDP_TRIED + "; then the late phase chosen for n=10, from iteration 300 (1024 trials at lr 1e-3; "
                   "seed 0, training tasks, paired with the preset on the other core for 20 min: 299.5-301.2 in minutes "
                   "14-20 against 302.6-308.9, level at equal iterations; rejected; RESULTS.md, sixth session); n=10's late "
                   "phase at the early step (seventh session) was not tried at n=25")


#: Trials per held-out task for the bandit rows (2026-11-24, fourth session; the presets evaluate 20).
#: At 20 the pull noise of a trial-return mean over 40 tasks x 20 trials is about the size of the
#: gaps judged: at n=10 RL² sat 0.07-0.09 below the best classic baseline, whose own competitors were
#: within 0.06 of it. Chosen for all bandit rows at once, before their held-out scores were looked at
#: again. 200 trials cost seconds at n=10 and n=100 and ~20 s per evaluation at n=500; the MDP rows
#: keep 20 (their planning baselines cost ~100x a bandit's, and their gaps are far beyond that noise).
RL2_BANDIT_EVAL_TRIALS = 200


def _rl2_bandit(k: int, n: int, minutes: float, target: Target, published: str, *, allowed: float | None = None,
                tried: str = RL2_TRIED, note: str = "") -> Setting:
    return Setting(f"rl2-bandit-k{k}-n{n}", "rl2", f"rl2-bandit-k{k}-n{n}", (0, 1, 2), target,
                   published, RL2_T1, wall_minutes=minutes, iterations=100_000, tried=tried, allowed_minutes=allowed, note=note,
                   eval_trials=RL2_BANDIT_EVAL_TRIALS, eval_relabel=True)


_UCB = Target(">=", "ucb1")
_BEST = Target(">=", "best_classic")
_PSRL = Target(">", "psrl")

#: The reproduction table, in priority order (the order ``reproduce.py`` runs them). Published
#: values are transcribed from the cited tables (RL²: total reward over the trial).
SETTINGS: tuple[Setting, ...] = (
    _rl2_bandit(5, 100, 10, _UCB, "RL² 78.7; UCB1 78.0; Gittins 78.3", tried=RL2_LATE_TRIED),
    _rl2_bandit(10, 100, 10, _UCB, "RL² 83.5; UCB1 82.4; Gittins 82.8", tried=RL2_K10_TRIED, note=RL2_K10_NOTE),
    _rl2_bandit(50, 100, 10, _UCB, "RL² 84.9; UCB1 84.3; Gittins 85.2", tried=RL2_K50_TRIED),
    Setting("rl2-tabular-mdp-n10", "rl2", "rl2-tabular-mdp-n10", (0, 1, 2), _PSRL,
            "RL² 156.2; PSRL 138.1; BEB 150.2; UCRL2 146.6", RL2_T2, wall_minutes=20, iterations=100_000,
            tried=RL2_MDP10_TRIED, eval_relabel=True),
    Setting("rl2-tabular-mdp-n25", "rl2", "rl2-tabular-mdp-n25", (0, 1, 2), _PSRL,
            "RL² 445.7; PSRL 408.8; BEB 427.8; UCRL2 424.1", RL2_T2, wall_minutes=20, iterations=100_000,
            tried=RL2_MDP25_TRIED, eval_relabel=True),
    _rl2_bandit(5, 10, 20, _BEST, "RL² 6.7; UCB1 6.7; Gittins 6.6", tried=RL2_K5N10_TRIED),
    _rl2_bandit(10, 10, 20, _BEST, "RL² 6.7; UCB1 6.7; Gittins 6.6", tried=RL2_N10_TRIED),
    _rl2_bandit(50, 10, 20, _BEST, "RL² 6.8; UCB1 6.6; Gittins 6.5", tried=RL2_N10_TRIED),
    _rl2_bandit(5, 500, 20, _BEST, "RL² 401.6; UCB1 405.8; Gittins 405.8", tried=RL2_N500_TRIED),
    Setting("maml-navigation2d", "maml", "maml-trpo-navigation2d", (0, 1, 2), Target(">=", -16.4),
            "-16.4 ± 0.6 after 1 step (pytorch-maml-rl, same paper config, 100 iterations)",
            "metarl issue 11 (pytorch-maml-rl run); Finn et al. 2017 (MAML), Fig. 4 (plot only)",
            metric="step1", iterations=100, run=False, note="not in the default run (--include-not-run): 100 iterations take ~9 min per seed on one core",
            tried=("the paper preset with its REINFORCE inner loss (ReLU 100x100, max KL 0.01) on 3 seeds: -18.87 ± 2.8, "
                   "every seed peaking near iteration 25-75 and falling back by 100; pytorch-maml-rl's tanh 64x64 (seed 0: "
                   "-20.5 at 100 it); max KL 0.03 (seed 0: training-task curve no better at 43 it, stopped); the DiCE inner "
                   "loss, now the preset's (seed 0, training tasks: post-return -15.5 at iterations 90-99 against "
                   "REINFORCE's -18.5, no decline). An audit against pytorch-maml-rl's code found no pipeline "
                   "difference that matters (RESULTS.md, MAML Navigation2D)")),
    Setting("maml-halfcheetah-vel", "maml", "maml-trpo-halfcheetah-vel", (0,), Target(),
            "learning curve only (no table)", "Finn et al. 2017 (MAML), Fig. 5 (half-cheetah velocity)",
            metric="step1", wall_minutes=75, iterations=500, run=False,
            note=("1 seed, 75 min of training pinned to one core (taskset -c 0) while another job used the other: "
                  "the paper's 500 iterations are out of reach on CPU (RESULTS.md, issue 10)")),
    Setting("maml-halfcheetah-dir", "maml", "maml-trpo-halfcheetah-dir", (0,), Target(),
            "learning curve only (no table)", "Finn et al. 2017 (MAML), Fig. 5 (half-cheetah direction)",
            metric="step1", wall_minutes=60, iterations=500, run=False,
            note=("1 seed, 60 min of training pinned to one core (taskset -c 0) while RL² rows trained on the other: "
                  "the paper's 500 iterations are out of reach on CPU (RESULTS.md, issue 10)")),
    # Issue 14: the rest of the gradient-based family, same env and the same 100-iteration budget as
    # MAML's row (so the rows compare at equal meta-iterations, not equal env steps: ProMP and E-MAML
    # use their papers' 40 tasks per iteration). None of these papers reports a Navigation2D number.
    Setting("promp-navigation2d", "promp", "promp-navigation2d", (0, 1, 2), Target(),
            "no Navigation2D figure published (ProMP reports MuJoCo curves)", "Rothfuss et al. 2019 (ProMP), Fig. 2",
            metric="step1", iterations=100),
    Setting("emaml-navigation2d", "emaml", "emaml-navigation2d", (0, 1, 2), Target(),
            "no Navigation2D figure published", "Stadie et al. 2018 (E-MAML); Rothfuss et al. 2019, Fig. 2 (E-MAML baseline)",
            metric="step1", iterations=100),
    Setting("reptile-navigation2d", "reptile", "reptile-navigation2d", (0, 1, 2), Target(),
            "no RL result published (Reptile's paper is supervised few-shot)", "Nichol et al. 2018 (Reptile), Algorithm 2",
            metric="last", iterations=100),
    # Issue 15: PEARL's small Navigation2D preset; "last" = the last posterior-sampling episode of the trial.
    Setting("pearl-navigation2d", "pearl", "pearl-navigation2d", (0, 1, 2), Target(),
            "no Navigation2D figure published (PEARL reports MuJoCo curves)", "Rakelly et al. 2019 (PEARL), Fig. 3",
            metric="last", iterations=40),
    Setting("promp-halfcheetah-vel", "promp", "promp-halfcheetah-vel", (0,), Target(),
            "learning curve only", "Rothfuss et al. 2019 (ProMP), Fig. 2 (HalfCheetahRandVel)",
            metric="step1", wall_minutes=120, iterations=1001, run=False, note="not run: see RESULTS.md, issue 14"),
    Setting("emaml-halfcheetah-vel", "emaml", "emaml-halfcheetah-vel", (0,), Target(),
            "learning curve only", "Rothfuss et al. 2019 (ProMP), Fig. 2 (E-MAML baseline, HalfCheetahRandVel)",
            metric="step1", wall_minutes=120, iterations=1001, run=False, note="not run: see RESULTS.md, issue 14"),
    Setting("reptile-halfcheetah-vel", "reptile", "reptile-halfcheetah-vel", (0,), Target(),
            "learning curve only (no published RL figure)", "Nichol et al. 2018 (Reptile), Algorithm 2",
            metric="last", wall_minutes=120, iterations=500, run=False, note="not run: see RESULTS.md, issue 14"),
    Setting("pearl-halfcheetah-vel", "pearl", "pearl-halfcheetah-vel", (0,), Target(),
            "learning curve only", "Rakelly et al. 2019 (PEARL), Fig. 3 (Half-Cheetah-Vel)",
            metric="last", wall_minutes=120, iterations=1000, run=False, note="not run: ~35 min per iteration on CPU"),
)


# ------------------------------------------------------------------------------- validation
def validate_settings(settings: Sequence[Setting], *, presets: Iterable[str] | None = None, agents: Iterable[str] | None = None) -> None:
    """Check every entry before anything runs.

    Raises:
        SettingError: duplicate name, unknown preset or agent, no seeds, negative or duplicate
            seeds, no budget, a non-positive budget, an unknown metric or target operator.
    """
    names: set[str] = set()
    presets = set(presets) if presets is not None else None
    agents = set(agents) if agents is not None else None
    for s in settings:
        who = f"setting {s.name!r}"
        if not s.name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", s.name):
            raise SettingError(f"setting name must be a plain file name, got {s.name!r}")
        if s.name in names:
            raise SettingError(f"{who} appears twice in SETTINGS")
        names.add(s.name)
        if presets is not None and s.preset not in presets and not s.preset.endswith((".yaml", ".yml")):
            raise SettingError(f"{who}: unknown preset {s.preset!r}")
        if agents is not None and s.agent not in agents:
            raise SettingError(f"{who}: unknown agent {s.agent!r}")
        if not s.seeds or len(set(s.seeds)) != len(s.seeds) or any(not isinstance(x, int) or isinstance(x, bool) or x < 0 for x in s.seeds):
            raise SettingError(f"{who}: seeds must be distinct ints >= 0, got {s.seeds!r}")
        if s.wall_minutes is None and s.iterations is None:
            raise SettingError(f"{who}: needs a budget (wall_minutes and/or iterations)")
        if s.wall_minutes is not None and not (math.isfinite(s.wall_minutes) and s.wall_minutes > 0):
            raise SettingError(f"{who}: wall_minutes must be > 0, got {s.wall_minutes!r}")
        if s.allowed_minutes is not None and (
            s.wall_minutes is None or not math.isfinite(s.allowed_minutes) or s.allowed_minutes < s.wall_minutes
        ):
            raise SettingError(f"{who}: allowed_minutes must be >= wall_minutes ({s.wall_minutes!r}), got {s.allowed_minutes!r}")
        if s.iterations is not None and (isinstance(s.iterations, bool) or not isinstance(s.iterations, int) or s.iterations < 1):
            raise SettingError(f"{who}: iterations must be an int >= 1, got {s.iterations!r}")
        if s.eval_trials is not None and (isinstance(s.eval_trials, bool) or not isinstance(s.eval_trials, int) or s.eval_trials < 1):
            raise SettingError(f"{who}: eval_trials must be an int >= 1 or None, got {s.eval_trials!r}")
        if s.eval_relabel is not None and not isinstance(s.eval_relabel, bool):
            raise SettingError(f"{who}: eval_relabel must be a bool or None, got {s.eval_relabel!r}")
        if s.metric not in METRICS:
            raise SettingError(f"{who}: metric must be one of {METRICS}, got {s.metric!r}")
        if s.target.op not in (">=", ">"):
            raise SettingError(f"{who}: target op must be '>=' or '>', got {s.target.op!r}")
        ref = s.target.reference
        if isinstance(ref, float | int) and not isinstance(ref, bool) and not math.isfinite(ref):
            raise SettingError(f"{who}: target reference must be finite, got {ref!r}")
        if not s.published or not s.citation:
            raise SettingError(f"{who}: needs a published value and its citation")


def select(settings: Sequence[Setting], only: str | None) -> list[Setting]:
    """Settings whose name matches any comma-separated glob of ``only`` (all when None).

    A pattern that is a setting's exact name picks that setting only (``maml-halfcheetah-vel``
    is not also ``emaml-halfcheetah-vel``); otherwise it is a glob, or a substring.

    Raises:
        SettingError: a pattern that matches nothing.
    """
    if not only:
        return list(settings)
    out = []
    for pat in (p.strip() for p in only.split(",") if p.strip()):
        hit = [s for s in settings if s.name == pat] or [s for s in settings if fnmatch.fnmatchcase(s.name, pat) or pat in s.name]
        if not hit:
            raise SettingError(f"--only {pat!r} matches no setting (known: {', '.join(s.name for s in settings)})")
        out += [s for s in hit if s not in out]
    return [s for s in settings if s in out]


# ------------------------------------------------------------------------------------ results
def preset_digest(name: str) -> str:
    """A digest of what a preset trains with (agent, env, config, env_kwargs; not its prose)."""
    from metarl.config import load_preset

    p = load_preset(name)
    body = json.dumps({"agent": p.agent, "env": p.env, "config": p.config, "env_kwargs": p.env_kwargs}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


#: Fingerprint keys that only change how a checkpoint is scored: a change re-scores, never retrains.
EVAL_KEYS = ("eval_trials", "eval_relabel")


def fingerprint(s: Setting) -> dict[str, Any]:
    """What a stored result must match to be reused: a changed preset (its name or any value it
    trains with) or budget reruns the seed; a changed evaluation (:data:`EVAL_KEYS`, present only
    when set, so results stored before it existed still match) re-scores its checkpoints."""
    fp: dict[str, Any] = {
        "agent": s.agent, "preset": s.preset, "preset_digest": preset_digest(s.preset),
        "wall_minutes": s.wall_minutes, "iterations": s.iterations, "metric": s.metric,
    }
    if s.eval_trials is not None:
        fp["eval_trials"] = s.eval_trials
    if s.eval_relabel is not None:
        fp["eval_relabel"] = s.eval_relabel
    return fp


def result_path(root: Path, s: Setting, seed: int) -> Path:
    return root / s.name / f"s{seed}.json"


def run_dir(root: Path, s: Setting, seed: int) -> Path:
    return root / s.name / f"s{seed}" / "run"


def _stored(root: Path, s: Setting, seed: int) -> dict[str, Any] | None:
    """The stored result file of (setting, seed) as written, whatever its fingerprint; None if absent."""
    path = result_path(root, s, seed)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SettingError(f"result file {path} is unreadable ({e}); delete it to rerun that seed") from e


def load_result(root: Path, s: Setting, seed: int) -> dict[str, Any] | None:
    """The stored result of (setting, seed), or None if there is none or it is for another config."""
    res = _stored(root, s, seed)
    return res if res is not None and res.get("fingerprint") == fingerprint(s) else None


def trains_differently(root: Path, s: Setting, seed: int) -> bool:
    """Whether the stored result of (setting, seed) came from another agent or preset (its name or
    values): its run directory must not be continued. A changed budget or metric alone may be."""
    res = _stored(root, s, seed)
    if res is None:
        return False
    old, new = res.get("fingerprint") or {}, fingerprint(s)
    return any(old.get(k) != new[k] for k in ("agent", "preset", "preset_digest"))


def rescorable(root: Path, s: Setting, seed: int) -> bool:
    """Whether the stored, finished result of (setting, seed) differs from ``s`` in its evaluation
    only and every checkpoint its curve scored is still on disk: re-score, do not retrain."""
    res, new = _stored(root, s, seed), fingerprint(s)
    if res is None or not res.get("done") or not res.get("curve"):
        return False
    old = res.get("fingerprint") or {}
    if old == new or {k: v for k, v in old.items() if k not in EVAL_KEYS} != {k: v for k, v in new.items() if k not in EVAL_KEYS}:
        return False
    rd = run_dir(root, s, seed)
    return all(_checkpoint(rd, p["iteration"]).is_file() for p in res["curve"])


def save_result(root: Path, s: Setting, seed: int, res: dict[str, Any]) -> None:
    path = result_path(root, s, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def status(root: Path, s: Setting, seed: int) -> str:
    """``done``, ``rescore`` (a finished run to score again), ``resume`` (a result or run
    directory to continue) or ``new``."""
    res = load_result(root, s, seed)
    if res is not None and res.get("done"):
        return "done"
    if rescorable(root, s, seed):
        return "rescore"
    if trains_differently(root, s, seed):
        return "new"
    if (res is not None and res.get("curve")) or (run_dir(root, s, seed) / "checkpoints").is_dir():
        return "resume"
    return "new"


def score_of(summary: dict[str, Any], metric: str) -> tuple[float, float | None]:
    """``(mean, ci95)`` of ``metric`` from an ``eval.json`` summary."""
    if metric == "trial_return":
        if "trial_return" not in summary:
            raise SettingError("eval.json has no trial_return (not an RL²-style agent): use metric 'step1' or 'last'")
        return summary["trial_return"]["mean"], summary["trial_return"]["ci95"]
    curve = summary["curve"]
    point = curve[1] if metric == "step1" and len(curve) > 1 else curve[-1]
    return point["mean_return"], point["ci95"]


def reference_value(target: Target, baselines: dict[str, dict[str, Any]]) -> tuple[str, float] | None:
    """``(label, value)`` the target compares with; None when it has no numeric reference or it is missing."""
    ref = target.reference
    if ref is None:
        return None
    if isinstance(ref, int | float):
        return f"{ref:g}", float(ref)
    if ref == "best_classic":
        others = {k: v["mean"] for k, v in baselines.items() if k != "random"}
        if not others:
            return None
        best = max(others, key=others.get)
        return best, others[best]
    if ref not in baselines:
        return None
    return ref, baselines[ref]["mean"]


def verdict(s: Setting, results: Sequence[dict[str, Any]]) -> str:
    """``met``, ``missed (...)``, ``n/a`` or ``incomplete`` for a row from its finished seed results.

    Met: the mean over seeds of the held-out score satisfies the target, and every seed trained
    within its wall budget (+:data:`WALL_TOLERANCE`, training stops on whole iterations).
    """
    done = [r for r in results if r.get("done")]
    if not done:
        return "not run" if not s.run else "incomplete"
    ref = reference_value(s.target, done[0].get("baselines", {}))
    if s.target.reference is None:
        return "n/a"
    if ref is None:
        return f"no reference ({s.target.reference} missing)"
    from metarl.evaluation import mean_ci95

    mean, _ = mean_ci95([r["score"] for r in done])
    ok = mean >= ref[1] if s.target.op == ">=" else mean > ref[1]
    over = [r["seed"] for r in done if s.wall_minutes is not None and r["wall_s"] > s.wall_minutes * 60 * (1 + WALL_TOLERANCE)]
    if ok and not over:
        return "**met**"
    why = [] if ok else [f"{mean:.4g} vs {ref[0]} {ref[1]:.4g}"]
    if over:
        why.append(f"seeds {over} over budget")
    return "**missed** (" + "; ".join(why) + ")"


def _fmt(mean: float | None, ci: float | None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.4g}" if ci is None else f"{mean:.4g} ± {ci:.2g}"


def table(settings: Sequence[Setting], root: Path, *, loadavg: str | None = None) -> str:
    """The markdown table (with a short header) built from the stored per-seed results."""
    from metarl.evaluation import mean_ci95

    lines = [
        "Held-out scores (RL²: mean trial return over the env's fixed held-out tasks, 20 trials each unless the row says more, its baselines then too; "
        "relabeled: each trial on its own randomly relabeled copy of the task (bandit arms; MDP states and actions), the "
        "baselines on the same copies, so a policy's arbitrary label preference cannot meet the fixed tasks' order; MAML, "
        "ProMP, E-MAML: return after one gradient step; Reptile: after its 3 steps; PEARL: the trial's last, "
        "posterior-sampling episode). *ours* is the mean over seeds ± 95% CI over seeds (Student t); "
        "baselines are computed by `metarl eval` on the same held-out tasks with the same evaluation seed "
        "(constants tuned on training tasks), mean ± 95% CI over tasks. Wall time is the trainer's clock "
        "(training iterations only), one torch thread per run, one or two runs at once on a shared 2-core machine"
        + (f" (load average while training: {loadavg})" if loadavg else "")
        + f". A target counts as met when the mean over seeds satisfies it and every seed stayed within its "
        f"wall budget (+{WALL_TOLERANCE:.0%}: training stops on whole iterations). The published RL² values "
        "were transcribed from Duan et al. 2016, Tables 1 and 2, without the paper at hand (no network access "
        "here): check them against the paper before quoting.",
        "",
        "| setting | budget | seeds | wall s per seed | env steps per seed | ours (held-out) | per seed | "
        "classic baselines (same tasks) | published | target | result |",
        "|---|---|---:|---|---|---:|---|---|---|---|---|",
    ]
    for s in settings:
        results = [r for r in (load_result(root, s, x) for x in s.seeds) if r is not None]
        done = [r for r in results if r.get("done")]
        budget = " / ".join(filter(None, [
            (f"{s.wall_minutes:g} of {s.allowed_minutes:g} min allowed" if s.allowed_minutes is not None
             else f"{s.wall_minutes:g} min") if s.wall_minutes is not None else "",
            f"{s.iterations} it" if s.iterations is not None and s.iterations < 100_000 else "",
        ]))
        if done:
            mean, ci = mean_ci95([r["score"] for r in done])
            ours = _fmt(mean, ci)
            per_seed = ", ".join(f"s{r['seed']}: {r['score']:.4g} ({r['iterations']} it)" for r in done)
            walls = ", ".join(f"{r['wall_s']:.0f}" for r in done)
            steps = ", ".join(f"{r['env_steps']:,}" for r in done)
            base = done[0].get("baselines", {})
            extra = done[0].get("baseline_constants", {})
            classic = "; ".join(f"{k} {_fmt(v['mean'], v['ci95'])}" for k, v in base.items())
            if extra:
                classic += " (" + ", ".join(f"{k}={v}" for k, v in extra.items()) + ")"
            how = ([f"{s.eval_trials} trials per task"] if s.eval_trials is not None else []) + (["relabeled"] if s.eval_relabel else [])
            if how:
                ours += f" ({', '.join(how)})"
        else:
            ours = per_seed = walls = steps = classic = "–"
        note = s.note or ("" if s.run else "not run here")
        seeds = f"{len(done)}/{len(s.seeds)}" + (f" ({note})" if note else "")
        result = verdict(s, results)
        if result.startswith("**missed**") and s.tried:
            result += f"; tried: {s.tried}"
        lines.append(
            f"| {s.name} | {budget} | {seeds} | {walls} | {steps} | {ours} | {per_seed} | {classic} | "
            f"{s.published} ({s.citation}) | {s.target.describe()} | {result} |"
        )
    lines += ["", "Learning curves (held-out score vs training wall time, per seed): "
              "![reproduction curves](results-reproduce/curves.png)"]
    return "\n".join(lines) + "\n"


def write_table(md_path: Path, text: str) -> None:
    """Put ``text`` between the markers of ``md_path`` (appending a new section if it has none)."""
    old = md_path.read_text(encoding="utf-8") if md_path.is_file() else ""
    block = f"{BEGIN}\n{text}{END}"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = head + block + tail
    elif BEGIN in old or END in old:
        raise SettingError(f"{md_path} has only one of the reproduce markers; fix it by hand")
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + "## Reproducing the papers (benchmarks/reproduce.py)\n\n" + block + "\n"
    md_path.write_text(new, encoding="utf-8")


def plot(settings: Sequence[Setting], root: Path, path: Path) -> Path | None:
    """Held-out score vs training wall time, one panel per setting that has curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for s in settings:
        res = [r for r in (load_result(root, s, x) for x in s.seeds) if r is not None and r.get("curve")]
        if res:
            panels.append((s, res))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (s, res) in zip(axes.flat, panels, strict=False):
        for r in res:
            xs = [p["wall_s"] / 60 for p in r["curve"]]
            ax.plot(xs, [p["score"] for p in r["curve"]], marker="o", label=f"seed {r['seed']}")
        base = res[0].get("baselines", {})
        ref = reference_value(s.target, base)
        if ref is not None:
            ax.axhline(ref[1], color="k", ls="--", lw=1, label=f"target: {ref[0]}")
        if "random" in base:
            ax.axhline(base["random"]["mean"], color="grey", ls=":", lw=1, label="random")
        if s.wall_minutes is not None:
            ax.axvline(s.wall_minutes, color="r", lw=0.8)
        ax.set_title(s.name, fontsize=9)
        ax.set_xlabel("training wall time (min)")
        ax.set_ylabel("held-out score")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------- training
def _last_metrics(rd: Path) -> dict[str, Any] | None:
    path = rd / "metrics.jsonl"
    if not path.is_file():
        return None
    last = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            last = json.loads(line)
    return last


def _checkpoint(rd: Path, iteration: int) -> Path:
    from metarl.checkpoint import checkpoint_path

    return checkpoint_path(rd / "checkpoints", iteration)


def _saved_iteration(rd: Path) -> int:
    """Iterations done according to the newest checkpoint (0 when there is none)."""
    from metarl.checkpoint import list_checkpoints

    ckpts = list_checkpoints(rd / "checkpoints") if (rd / "checkpoints").is_dir() else []
    return ckpts[-1][0] if ckpts else 0


def _saved_state(rd: Path) -> tuple[int, int, float]:
    """``(iteration, env_steps, wall_s)`` of the newest checkpoint (zeros when there is none)."""
    it = _saved_iteration(rd)
    if it == 0:
        return 0, 0, 0.0
    m = None
    for line in (rd / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else None
        if row is not None and row["iteration"] == it - 1:
            m = row
    if m is None:
        raise SettingError(f"{rd}: checkpoint for iteration {it} but no metrics line for it")
    return it, int(m["env_steps"]), float(m["wall_s"])


#: Iterations trained first after a phase boundary, to measure the new phase's iteration time.
PHASE_PROBE = 3


def phase_boundaries(s: Setting) -> tuple[int, ...]:
    """Iterations where the preset changes its cost per iteration (RL²'s ``late_iteration``)."""
    from metarl.config import load_preset

    late = load_preset(s.preset).config.get("late_iteration") or 0
    return (int(late),) if late > 0 else ()


def next_chunk(
    s: Setting, done_iters: int, wall_s: float, s_per_iter: float | None, marks_left: Sequence[float],
    boundaries: Sequence[int] = (),
) -> int:
    """Iterations to train next: up to the next curve mark, within the budget (0: finished).

    ``marks_left`` are the budget fractions not yet scored. Without a time estimate one iteration
    is run first (it measures ``s_per_iter``). A wall-clock budget's chunks stop at each of
    ``boundaries`` (where the cost per iteration changes) and then run :data:`PHASE_PROBE`
    iterations to measure the new cost before planning further.
    """
    cap = s.iterations if s.iterations is not None else 10**9
    if done_iters >= cap or not marks_left:
        return 0
    if s.wall_minutes is None:  # iteration budget: marks are fractions of the iterations
        goal = max(done_iters + 1, math.ceil(marks_left[0] * cap))
        return min(goal, cap) - done_iters
    budget = s.wall_minutes * 60.0
    if s_per_iter is None:
        return 1
    left = budget - wall_s
    # Iteration times vary on a shared machine: plan the budget's end with a 10% margin.
    n = int(left // (s_per_iter * 1.1)) if left > 0 else 0
    if n <= 0:
        return 0
    goal_t = marks_left[0] * budget
    n_mark = max(1, round((goal_t - wall_s) / s_per_iter))
    n = min(n, n_mark, cap - done_iters)
    for b in boundaries:
        if done_iters < b < done_iters + n:
            n = b - done_iters  # stop where the cost per iteration changes...
        elif b == done_iters:
            n = min(n, PHASE_PROBE)  # ...and measure the new cost before planning past it
    return n


def _run(cmd: Sequence[str], log: Path) -> None:
    with log.open("a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}; see {log}")


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        return []


def train_seed(
    s: Setting, seed: int, root: Path, *, metarl_cmd: Sequence[str], score_cmd: Sequence[str] | None = None,
    report: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or resume) one seed of ``s`` chunk by chunk, scoring checkpoints at the curve marks.

    ``metarl_cmd`` runs the ``metarl`` CLI; ``score_cmd`` scores a checkpoint without the baselines
    (default: this file's ``_score`` in this interpreter). Tests pass fakes of both.
    """
    score_cmd = list(score_cmd or [sys.executable, __file__, "_score"])
    rd = run_dir(root, s, seed)
    rd.parent.mkdir(parents=True, exist_ok=True)
    log = rd.parent / "log.txt"
    res = load_result(root, s, seed) or {"setting": s.name, "seed": seed, "fingerprint": fingerprint(s), "curve": [], "loadavg": []}
    if res.get("done"):
        return res
    if rescorable(root, s, seed):
        return _rescore(s, seed, root, log, metarl_cmd, score_cmd, report)
    if rd.exists() and trains_differently(root, s, seed):
        report(f"{s.name} s{seed}: the stored run used another preset (or other preset values): training from scratch")
        shutil.rmtree(rd)
    if rd.exists() and not (rd / "checkpoints").is_dir():
        shutil.rmtree(rd)  # a run that died before its first checkpoint: start over
    if not rd.exists():
        res["curve"], res["loadavg"] = [], []  # nothing to continue from
        for stale in rd.parent.glob("eval-it*.json"):  # scores of a run that is gone: never reuse them
            stale.unlink()
    scored = {round(p["fraction"], 6) for p in res["curve"]}
    marks_left = [f for f in CURVE_FRACTIONS if round(f, 6) not in scored]
    it, steps, wall = _saved_state(rd) if rd.exists() else (0, 0, 0.0)
    s_per_iter = wall / it if it else None
    boundaries = phase_boundaries(s)
    if any(0 < b < it for b in boundaries):
        s_per_iter = None  # resumed past a phase change: the average mixes both phases, measure again
    base = [*metarl_cmd, "train", s.agent, "--config", s.preset, "--seed", str(seed), "--threads", "1",
            "--out", str(rd), "--eval-tasks", "0", "--checkpoint-every", "1000000", "--keep-checkpoints", "0", "--log-every", "0"]
    while True:
        n = next_chunk(s, it, wall, s_per_iter, marks_left, boundaries)
        if n > 0:
            t0 = time.time()
            _run([*base, "--iterations", str(it + n), *(["--resume"] if rd.exists() else [])], log)
            new_it, steps, new_wall = _saved_state(rd)
            s_per_iter = max((new_wall - wall) / max(new_it - it, 1), wall / max(it, 1) if it else 0.0)
            it, wall = new_it, new_wall
            res["loadavg"].append(_loadavg())
            report(f"{s.name} s{seed}: {it} it, {wall:.0f} s training ({time.time() - t0:.0f} s real)")
        finished = next_chunk(s, it, wall, s_per_iter, marks_left, boundaries) == 0
        frac = wall / (s.wall_minutes * 60) if s.wall_minutes is not None else it / s.iterations
        due = [f for f in marks_left if frac >= f - 0.02] or (marks_left[:1] if finished or n == 0 else [])
        if due and it > 0:
            res["curve"].append(_evaluate(s, rd, it, steps, wall, max(due), log, metarl_cmd, score_cmd, final=finished or max(due) >= 1.0))
            marks_left = [f for f in marks_left if f > max(due)]
            report(f"{s.name} s{seed}: held-out {res['curve'][-1]['score']:.4g} at {wall:.0f} s")
        res.update({"iterations": it, "env_steps": steps, "wall_s": wall})
        if finished or not marks_left:
            if marks_left and it > 0 and not (res["curve"] and res["curve"][-1]["iteration"] == it):
                # budget spent before the last mark: score the end point
                res["curve"].append(_evaluate(s, rd, it, steps, wall, 1.0, log, metarl_cmd, score_cmd, final=True))
            res.update(_final_fields(s, rd, it))
            res["host"] = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
            save_result(root, s, seed, res)
            return res
        save_result(root, s, seed, res)


def _final_fields(s: Setting, rd: Path, it: int) -> dict[str, Any]:
    """A finished seed's score, baselines and task count from its final ``eval-it<it>.json``."""
    final = json.loads((rd.parent / f"eval-it{it}.json").read_text(encoding="utf-8"))
    score, ci = score_of(final, s.metric)
    constants = {k: v for k, v in final.get("agent_extra", {}).items() if isinstance(v, int | float) and k != "trials_per_task"}
    return {"score": score, "score_ci95": ci, "baselines": final.get("baselines", {}), "baseline_constants": constants,
            "num_tasks": final["num_tasks"], "done": True}


def _rescore(
    s: Setting, seed: int, root: Path, log: Path, metarl_cmd: Sequence[str], score_cmd: Sequence[str],
    report: Callable[[str], None],
) -> dict[str, Any]:
    """Score every curve point of a finished seed again from its checkpoint under ``s``'s evaluation
    (:func:`rescorable`); training, wall time and steps are kept as they were."""
    res = _stored(root, s, seed)
    assert res is not None
    rd = run_dir(root, s, seed)
    report(f"{s.name} s{seed}: evaluation changed, training did not: re-scoring its {len(res['curve'])} checkpoints")
    curve = []
    for i, p in enumerate(res["curve"]):
        (rd.parent / f"eval-it{p['iteration']}.json").unlink(missing_ok=True)  # scored the old way
        final = i == len(res["curve"]) - 1
        curve.append(_evaluate(s, rd, p["iteration"], p["env_steps"], p["wall_s"], p["fraction"], log, metarl_cmd, score_cmd, final=final))
    res.update({"fingerprint": fingerprint(s), "curve": curve, **_final_fields(s, rd, curve[-1]["iteration"])})
    save_result(root, s, seed, res)
    report(f"{s.name} s{seed}: held-out {res['score']:.4g} (re-scored)")
    return res


def _evaluate(
    s: Setting, rd: Path, it: int, steps: int, wall: float, fraction: float, log: Path, metarl_cmd: Sequence[str],
    score_cmd: Sequence[str], *, final: bool,
) -> dict[str, Any]:
    """Score the checkpoint of iteration ``it`` on the held-out tasks (``eval-it<it>.json``).

    The final point runs ``metarl eval`` (the agent's score and the classic baselines); earlier
    curve points score the agent alone, by the same library call with the baselines switched off
    (they do not change with training and tuning them again per point costs minutes).
    """
    out = rd.parent / f"eval-it{it}.json"
    if not out.is_file() or (final and "baselines" not in json.loads(out.read_text(encoding="utf-8")) and s.agent == "rl2"):
        ckpt = str(_checkpoint(rd, it))
        flags = ([] if s.eval_trials is None else ["--trials-per-task", str(s.eval_trials)]) + (
            [] if s.eval_relabel is None else ["--relabel", str(s.eval_relabel)])
        if final:
            _run([*metarl_cmd, "eval", str(rd), "--checkpoint", ckpt, "--seed", "0", "--threads", "1", *flags, *s.eval_args], log)
            shutil.copyfile(rd / "eval.json", out)
        else:
            _run([*score_cmd, str(rd), ckpt, str(out), *flags], log)
    summary = json.loads(out.read_text(encoding="utf-8"))
    score, ci = score_of(summary, s.metric)
    return {"fraction": fraction, "iteration": it, "env_steps": steps, "wall_s": wall, "score": score, "ci95": ci}


def _score(argv: Sequence[str]) -> None:
    """Child process ``_score RUN CHECKPOINT OUT [--trials-per-task N] [--relabel True|False]``:
    ``eval.json`` of one checkpoint without the classic baselines (seed 0, one thread; the options
    as ``metarl eval``'s)."""
    from metarl.evaluation import evaluate_run

    ap = argparse.ArgumentParser(prog="reproduce.py _score")
    for name in ("run", "checkpoint", "out"):
        ap.add_argument(name)
    ap.add_argument("--trials-per-task", type=int, default=None)
    ap.add_argument("--relabel", choices=("True", "False"), default=None)
    a = ap.parse_args(argv)
    summary = evaluate_run(a.run, checkpoint=a.checkpoint, seed=0, threads=1, baselines=False, write=False,
                           trials_per_task=a.trials_per_task, relabel=None if a.relabel is None else a.relabel == "True")
    Path(a.out).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


# -------------------------------------------------------------------------------------- main
def plan(settings: Sequence[Setting], root: Path) -> list[tuple[Setting, int, str]]:
    """``(setting, seed, status)`` for every seed of every runnable setting."""
    return [(s, seed, status(root, s, seed)) for s in settings if s.run for seed in s.seeds]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated globs (or substrings) of setting names")
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained at once (one torch thread each)")
    ap.add_argument("--seeds", type=int, default=None, help="run only the first N seeds of each setting")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    ap.add_argument("--table-only", action="store_true", help="rewrite the table and plot from stored results")
    ap.add_argument("--include-not-run", action="store_true", help="also train settings marked run=False (MAML rows)")
    ap.add_argument("--results", type=Path, default=RESULTS_DIR, help="results directory")
    ap.add_argument(
        "--markdown", type=Path, default=None,
        help="markdown file that receives the table (default: benchmarks/RESULTS.md for the shipped results "
        "directory, else RESULTS.md inside --results, so a scratch run never rewrites the shipped table)",
    )
    args = ap.parse_args(argv)
    if args.markdown is None:
        args.markdown = RESULTS_MD if args.results.resolve() == RESULTS_DIR.resolve() else args.results / "RESULTS.md"
    if args.jobs < 1:
        raise SettingError(f"--jobs must be >= 1, got {args.jobs}")
    if args.seeds is not None and args.seeds < 1:
        raise SettingError(f"--seeds must be >= 1, got {args.seeds}")

    from metarl.agent import AGENTS
    from metarl.config import list_presets

    validate_settings(SETTINGS, presets=list_presets(), agents=AGENTS)
    chosen = select(SETTINGS, args.only)
    if args.include_not_run:
        chosen = [dataclasses.replace(s, run=True) for s in chosen]
    if args.seeds is not None:
        chosen = [dataclasses.replace(s, seeds=s.seeds[: args.seeds]) for s in chosen]
    todo = plan(chosen, args.results)
    if args.dry_run or args.table_only:
        if args.dry_run:
            for s, seed, st in todo:
                budget = f"{s.wall_minutes} min" if s.wall_minutes else f"{s.iterations} iterations"
                print(f"{s.name:28s} seed {seed}  {st:7s} {s.agent} --config {s.preset}  budget {budget}  target {s.target.describe()}")
            for s in chosen:
                if not s.run:
                    print(f"{s.name:28s} not run here ({s.note})")
            return 0
        _finish(chosen, args)
        return 0

    metarl_cmd = [str(Path(sys.executable).with_name("metarl"))]  # the console script of this interpreter's install
    from rich.progress import Progress

    lock = threading.Lock()
    pending = [(s, seed) for s, seed, st in todo if st != "done"]
    with Progress() as bar:
        task = bar.add_task("reproduce", total=len(todo), completed=len(todo) - len(pending))

        def one(item: tuple[Setting, int]) -> None:
            s, seed = item
            train_seed(s, seed, args.results, metarl_cmd=metarl_cmd, report=lambda m: bar.console.print(m))
            with lock:
                bar.advance(task)
                _finish(chosen, args)

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for f in [pool.submit(one, item) for item in pending]:
                f.result()
    _finish(chosen, args)
    return 0


def _finish(chosen: Sequence[Setting], args: argparse.Namespace) -> None:
    loads = [x for s in SETTINGS for seed in s.seeds for r in [load_result(args.results, s, seed)] if r for x in r.get("loadavg", []) if x]
    load = f"1-min load {min(x[0] for x in loads):.1f}–{max(x[0] for x in loads):.1f}" if loads else None
    write_table(args.markdown, table(SETTINGS, args.results, loadavg=load))
    plot(SETTINGS, args.results, args.results / "curves.png")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_score"]:
        _score(sys.argv[2:])
        sys.exit(0)
    try:
        sys.exit(main())
    except SettingError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
