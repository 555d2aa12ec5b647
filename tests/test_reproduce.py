"""benchmarks/reproduce.py: settings validation, resume logic and the table writer (fake runs, no training)."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from metarl.agent import AGENTS
from metarl.config import list_presets, load_preset
from metarl.evaluation import mean_ci95

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


rp = _load()


def _setting(**kw):
    base = dict(name="toy", agent="rl2", preset="rl2-bandit-k5-n100", seeds=(0, 1), target=rp.Target(">=", "ucb1"),
                published="RL² 78.7", citation="Duan et al. 2016, Table 1", wall_minutes=1.0, iterations=1000)
    return rp.Setting(**{**base, **kw})


# --- settings ---------------------------------------------------------------------------------
def test_shipped_settings_are_valid_and_cover_the_issue() -> None:
    rp.validate_settings(rp.SETTINGS, presets=list_presets(), agents=AGENTS)
    names = [s.name for s in rp.SETTINGS]
    for k in (5, 10, 50):
        assert f"rl2-bandit-k{k}-n100" in names and f"rl2-bandit-k{k}-n10" in names
    assert {"rl2-bandit-k5-n500", "rl2-tabular-mdp-n10", "rl2-tabular-mdp-n25"} <= set(names)
    maml = [s for s in rp.SETTINGS if s.agent == "maml"]
    assert {s.preset for s in maml} == {"maml-trpo-navigation2d", "maml-trpo-halfcheetah-vel", "maml-trpo-halfcheetah-dir"}
    assert not any(s.run for s in maml)  # the lead runs them
    nav = next(s for s in maml if s.preset == "maml-trpo-navigation2d")
    assert nav.iterations == 100 and nav.target.reference == -16.4 and nav.metric == "step1"
    # The row's preset departs from the paper in one value, and says so in its source (issue 11).
    preset = load_preset(nav.preset)
    assert preset.config["inner_estimator"] == "dice" and "Ours, not the papers': inner_estimator dice" in preset.source
    assert "DiCE" in nav.tried
    # Priority order: n=100 bandits first, then the MDP n=10 row.
    assert names[:4] == ["rl2-bandit-k5-n100", "rl2-bandit-k10-n100", "rl2-bandit-k50-n100", "rl2-tabular-mdp-n10"]
    for s in rp.SETTINGS:
        if s.agent == "rl2" and "n100" in s.name and "bandit" in s.name:
            assert s.wall_minutes == 10 and s.target.reference == "ucb1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(preset="no-such-preset"), "unknown preset 'no-such-preset'"),
        (dict(agent="nope"), "unknown agent 'nope'"),
        (dict(seeds=()), "seeds must be distinct ints >= 0"),
        (dict(seeds=(1, 1)), "seeds must be distinct"),
        (dict(seeds=(-1,)), "seeds must be distinct ints >= 0"),
        (dict(wall_minutes=None, iterations=None), "needs a budget"),
        (dict(wall_minutes=0.0), "wall_minutes must be > 0, got 0.0"),
        (dict(iterations=0), "iterations must be an int >= 1, got 0"),
        (dict(metric="mean"), "metric must be one of"),
        (dict(target=rp.Target("<", "ucb1")), "target op must be"),
        (dict(target=rp.Target(">=", float("nan"))), "target reference must be finite"),
        (dict(citation=""), "needs a published value and its citation"),
        (dict(name="a/b"), "plain file name"),
        (dict(wall_minutes=5.0, allowed_minutes=4.0), r"allowed_minutes must be >= wall_minutes \(5.0\), got 4.0"),
        (dict(wall_minutes=None, allowed_minutes=20.0), "allowed_minutes must be >= wall_minutes"),
        (dict(allowed_minutes=float("inf")), "allowed_minutes must be >= wall_minutes"),
        (dict(eval_trials=0), "eval_trials must be an int >= 1 or None, got 0"),
        (dict(eval_trials=True), "eval_trials must be an int >= 1 or None, got True"),
        (dict(eval_relabel="yes"), "eval_relabel must be a bool or None, got 'yes'"),
    ],
)
def test_bad_settings_are_typed_errors_naming_the_culprit(change, message) -> None:
    with pytest.raises(rp.SettingError, match=message) as info:
        rp.validate_settings([_setting(**change)], presets=list_presets(), agents=AGENTS)
    assert isinstance(info.value, ValueError)


def test_duplicate_setting_names_and_unmatched_only_are_errors() -> None:
    with pytest.raises(rp.SettingError, match="'toy' appears twice"):
        rp.validate_settings([_setting(), _setting()])
    with pytest.raises(rp.SettingError, match="--only 'zzz' matches no setting"):
        rp.select(rp.SETTINGS, "zzz")
    got = rp.select(rp.SETTINGS, "rl2-tabular-mdp-*,rl2-bandit-k5-n100")
    assert [s.name for s in got] == ["rl2-bandit-k5-n100", "rl2-tabular-mdp-n10", "rl2-tabular-mdp-n25"]  # SETTINGS order
    # An exact name is that setting only, although it is also a substring of another name.
    assert [s.name for s in rp.select(rp.SETTINGS, "maml-halfcheetah-vel")] == ["maml-halfcheetah-vel"]
    assert "emaml-halfcheetah-vel" in [s.name for s in rp.select(rp.SETTINGS, "*maml-halfcheetah-vel")]


# --- chunk planning ---------------------------------------------------------------------------
def test_next_chunk_reaches_marks_and_never_plans_past_the_budget() -> None:
    s = _setting(wall_minutes=10.0, iterations=1000)  # 600 s
    marks = list(rp.CURVE_FRACTIONS)
    assert rp.next_chunk(s, 0, 0.0, None, marks) == 1  # first: one iteration measures the speed
    assert rp.next_chunk(s, 1, 5.0, 5.0, marks) == 29  # to 150 s (the 1/4 mark) at 5 s per iteration
    assert rp.next_chunk(s, 100, 500.0, 5.0, [1.0]) == 18  # the last 100 s, with a 10% margin
    assert rp.next_chunk(s, 119, 595.0, 5.0, [1.0]) == 0  # not one more iteration fits
    assert rp.next_chunk(s, 0, 0.0, 5.0, []) == 0  # every mark scored
    assert rp.next_chunk(_setting(wall_minutes=10.0, iterations=30), 25, 100.0, 5.0, [1.0]) == 5  # iteration cap
    it_only = _setting(wall_minutes=None, iterations=100)
    assert rp.next_chunk(it_only, 0, 0.0, None, marks) == 25
    assert rp.next_chunk(it_only, 25, 9.0, 0.4, marks[1:]) == 25
    assert rp.next_chunk(it_only, 100, 40.0, 0.4, []) == 0


def test_next_chunk_stops_at_a_phase_change_and_measures_the_new_cost() -> None:
    """RL²'s late phase makes iterations ~4x dearer: a chunk planned at the old cost must not cross it."""
    s = _setting(wall_minutes=10.0, iterations=100_000)
    marks = list(rp.CURVE_FRACTIONS)
    assert rp.next_chunk(s, 1, 0.5, 0.5, marks, boundaries=(400,)) == 299  # to the 1/4 mark, before the change
    assert rp.next_chunk(s, 300, 150.0, 0.5, marks[1:], boundaries=(400,)) == 100  # stops at iteration 400
    assert rp.next_chunk(s, 400, 200.0, 0.5, marks[1:], boundaries=(400,)) == rp.PHASE_PROBE  # then measures
    assert rp.next_chunk(s, 403, 207.0, 2.3, marks[1:], boundaries=(400,)) == 40  # and plans at the new cost
    assert rp.phase_boundaries(_setting(preset="rl2-bandit-k10-n100")) == (400,)
    assert rp.phase_boundaries(_setting(preset="rl2-bandit-k50-n100")) == ()


# --- fake runs ----------------------------------------------------------------------------------
FAKE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    args = sys.argv[1:]
    calls = Path(os.environ["FAKE_CALLS"])
    with calls.open("a") as f:
        f.write(" ".join(args) + "\\n")
    def opt(name):
        return args[args.index(name) + 1]
    if args[0] == "train":
        out = Path(opt("--out")); target = int(opt("--iterations"))
        fail_at = int(os.environ.get("FAKE_FAIL_AT", "0"))
        if "--resume" not in args and out.exists():
            sys.exit("exists")
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        done = sorted(int(p.stem.split("-")[1]) for p in (out / "checkpoints").glob("ckpt-*.pt"))
        it = done[-1] if done else 0
        with (out / "metrics.jsonl").open("a") as m:
            while it < target:
                if fail_at and it + 1 == fail_at and not Path(os.environ["FAKE_CALLS"] + ".failed").exists():
                    Path(os.environ["FAKE_CALLS"] + ".failed").touch()
                    sys.exit("killed")
                m.write(json.dumps({"iteration": it, "env_steps": 100 * (it + 1), "wall_s": 4.0 * (it + 1)}) + "\\n")
                it += 1
        (out / "checkpoints" / f"ckpt-{it:06d}.pt").write_text("x")
    else:  # eval RUN --checkpoint CKPT ... | _score RUN CKPT OUT
        run = Path(args[1])
        ckpt = args[args.index("--checkpoint") + 1] if args[0] == "eval" else args[2]
        it = int(Path(ckpt).stem.split("-")[1])
        trials = int(opt("--trials-per-task")) if "--trials-per-task" in args else 20
        relabel = 0.5 if "--relabel" in args and opt("--relabel") == "True" else 0.0
        summary = {"num_tasks": 3, "curve": [{"x": 0, "mean_return": 0.0, "ci95": 0.1}],
                   "trial_return": {"mean": 50.0 + it + (trials - 20) / 100 + relabel, "ci95": 1.0}}
        if args[0] == "eval":
            summary["baselines"] = {"random": {"mean": 50.0, "ci95": 1.0}, "ucb1": {"mean": 70.0, "ci95": 1.0}}
            summary["agent_extra"] = {"ucb1_c": 0.2, "ucb1_tuning": {"0.2": 1.0}, "trials_per_task": 20}
            (run / "eval.json").write_text(json.dumps(summary))
        else:
            Path(args[3]).write_text(json.dumps(summary))
    """
)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_metarl.py"
    script.write_text(FAKE)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    cmd = [sys.executable, str(script)]
    return {"cmd": cmd, "score": [*cmd, "_score"], "calls": calls, "root": tmp_path / "results"}


def _calls(fake) -> list[str]:
    return fake["calls"].read_text().splitlines() if fake["calls"].exists() else []


def test_a_seed_trains_in_chunks_scores_curve_points_and_is_then_skipped(fake) -> None:
    s = _setting(wall_minutes=1.0)  # 60 s at 4 s per fake iteration: 14 fit with the 10% margin
    assert rp.status(fake["root"], s, 0) == "new"
    res = rp.train_seed(s, 0, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=lambda m: None)
    assert res["done"] and res["iterations"] == 14 and res["wall_s"] == 56.0 and res["env_steps"] == 1400
    assert [p["fraction"] for p in res["curve"]] == [0.25, 0.5, 0.75, 1.0]
    assert [p["iteration"] for p in res["curve"]] == [4, 8, 11, 14]
    assert res["score"] == 64.0 and res["baselines"]["ucb1"]["mean"] == 70.0
    assert res["baseline_constants"] == {"ucb1_c": 0.2}  # scalars only
    calls = _calls(fake)
    assert sum(c.startswith("eval ") for c in calls) == 1  # baselines only at the final point
    assert sum(c.startswith("_score ") for c in calls) == 3
    assert all("--threads 1" in c and "--seed 0" in c for c in calls if c.startswith("train "))
    assert all("--resume" in c for c in [c for c in calls if c.startswith("train ")][1:])
    stored = json.loads(rp.result_path(fake["root"], s, 0).read_text())
    assert stored == json.loads(json.dumps(res))
    assert rp.status(fake["root"], s, 0) == "done"
    n = len(calls)
    rp.train_seed(s, 0, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=lambda m: None)
    assert len(_calls(fake)) == n  # a done seed runs nothing


def test_a_half_done_seed_resumes_and_ends_like_an_uninterrupted_one(fake, monkeypatch, tmp_path) -> None:
    s = _setting(wall_minutes=1.0)
    monkeypatch.setenv("FAKE_FAIL_AT", "10")
    with pytest.raises(RuntimeError, match="failed with exit code"):
        rp.train_seed(s, 1, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=lambda m: None)
    assert rp.status(fake["root"], s, 1) == "resume"
    partial = json.loads(rp.result_path(fake["root"], s, 1).read_text())
    assert not partial.get("done") and [p["fraction"] for p in partial["curve"]] == [0.25, 0.5]
    res = rp.train_seed(s, 1, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=lambda m: None)
    assert res["done"] and res["iterations"] == 14 and [p["fraction"] for p in res["curve"]] == [0.25, 0.5, 0.75, 1.0]
    trains = [c for c in _calls(fake) if c.startswith("train ")]
    assert "--resume" in trains[-1]
    # A result for another preset or budget is not reused: that seed is new again.
    assert rp.status(fake["root"], _setting(wall_minutes=2.0), 1) == "resume"  # run dir present, result ignored
    assert rp.load_result(fake["root"], _setting(wall_minutes=2.0), 1) is None


# --- the table --------------------------------------------------------------------------------
def _fake_result(root, s, seed, score, wall=590.0, done=True):
    rp.save_result(root, s, seed, {
        "setting": s.name, "seed": seed, "fingerprint": rp.fingerprint(s), "done": done, "score": score, "score_ci95": 1.0,
        "iterations": 100, "env_steps": 1_280_000, "wall_s": wall, "loadavg": [[2.5, 2.0, 1.5]],
        "curve": [{"fraction": 1.0, "iteration": 100, "env_steps": 1_280_000, "wall_s": wall, "score": score, "ci95": 1.0}],
        "baselines": {"random": {"mean": 50.0, "ci95": 1.0}, "ucb1": {"mean": 80.0, "ci95": 2.0}, "gittins": {"mean": 81.0, "ci95": 2.0}},
        "baseline_constants": {"ucb1_c": 0.2},
    })


def test_table_rows_carry_scores_cis_baselines_and_verdicts(tmp_path) -> None:
    met = _setting(name="met", wall_minutes=10.0)
    missed = _setting(name="missed", wall_minutes=10.0, target=rp.Target(">=", "best_classic"))
    late = _setting(name="late", wall_minutes=10.0, tried="bigger batches")
    absent = _setting(name="absent")
    maml = _setting(name="maml", agent="maml", run=False, note="run by the lead", target=rp.Target(">=", -16.4), metric="step1")
    for seed, score in ((0, 82.0), (1, 84.0)):
        _fake_result(tmp_path, met, seed, score)
        _fake_result(tmp_path, missed, seed, score - 4)
        _fake_result(tmp_path, late, seed, score, wall=700.0)
    text = rp.table([met, missed, late, absent, maml], tmp_path, loadavg="1-min load 2.5–2.5")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ") and "---" not in line}
    mean, ci = mean_ci95([82.0, 84.0])
    assert f"{mean:.4g} ± {ci:.2g}" in rows["met"] and "**met**" in rows["met"]
    assert "s0: 82 (100 it), s1: 84 (100 it)" in rows["met"] and "1,280,000, 1,280,000" in rows["met"]
    assert "ucb1 80 ± 2" in rows["met"] and "ucb1_c=0.2" in rows["met"] and "RL² 78.7 (Duan et al. 2016, Table 1)" in rows["met"]
    assert "**missed** (79 vs gittins 81)" in rows["missed"]  # the best classic baseline, not UCB1
    assert "over budget" in rows["late"] and "**missed**" in rows["late"] and "tried: bigger batches" in rows["late"]
    assert "tried" not in rows["met"]
    assert "0/2" in rows["absent"] and "incomplete" in rows["absent"]
    assert "run by the lead" in rows["maml"] and "not run" in rows["maml"]
    assert "load average while training: 1-min load 2.5–2.5" in text


def test_a_shorter_budget_than_allowed_is_shown_and_judged_by_the_budget_trained(tmp_path) -> None:
    short = _setting(name="short", wall_minutes=5.0, allowed_minutes=20.0, iterations=100_000)
    _fake_result(tmp_path, short, 0, 82.0, wall=290.0)
    _fake_result(tmp_path, short, 1, 84.0, wall=300.0)
    text = rp.table([short], tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| short "))
    assert "| 5 of 20 min allowed |" in row and "**met**" in row
    _fake_result(tmp_path, short, 1, 84.0, wall=400.0)  # within the 20 allowed, but past the 5 it was given
    assert "over budget" in rp.verdict(short, [rp.load_result(tmp_path, short, x) for x in (0, 1)])


def test_verdict_handles_strict_targets_and_numbers() -> None:
    psrl = _setting(target=rp.Target(">", "psrl"))
    res = [{"done": True, "score": 10.0, "wall_s": 1.0, "seed": 0, "baselines": {"psrl": {"mean": 10.0, "ci95": 1.0}}}]
    assert rp.verdict(psrl, res).startswith("**missed**")  # equal is not above
    assert rp.verdict(_setting(target=rp.Target(">=", "psrl")), res) == "**met**"
    assert rp.verdict(_setting(target=rp.Target(">=", 10.5)), res).startswith("**missed** (10 vs 10.5")
    assert rp.verdict(_setting(target=rp.Target()), res) == "n/a"
    assert rp.verdict(_setting(target=rp.Target(">=", "beb")), res).startswith("no reference")


def test_write_table_replaces_only_between_markers(tmp_path) -> None:
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\nintro\n")
    rp.write_table(md, "| a |\n")
    first = md.read_text()
    assert first.startswith("# Results\n\nintro\n") and rp.BEGIN in first and "| a |" in first
    md.write_text(first + "\n## Later section\n\ntext\n")
    rp.write_table(md, "| b |\n")
    second = md.read_text()
    assert "| a |" not in second and "| b |" in second and second.endswith("## Later section\n\ntext\n")
    assert second.count(rp.BEGIN) == 1 and second.count(rp.END) == 1
    md.write_text(f"x\n{rp.BEGIN}\nno end\n")
    with pytest.raises(rp.SettingError, match="only one of the reproduce markers"):
        rp.write_table(md, "| c |\n")


def test_plot_draws_the_curves(tmp_path) -> None:
    s = _setting()
    _fake_result(tmp_path, s, 0, 80.0)
    path = rp.plot([s], tmp_path, tmp_path / "curves.png")
    assert path is not None and path.stat().st_size > 1000
    assert rp.plot([_setting(name="empty")], tmp_path, tmp_path / "none.png") is None


def test_dry_run_prints_the_plan(capsys, tmp_path) -> None:
    assert rp.main(["--dry-run", "--only", "rl2-bandit-k5-n100", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all("rl2-bandit-k5-n100" in line and " new " in line for line in out)
    assert np.all(["budget 10" in line for line in out])


def test_table_only_with_another_results_dir_leaves_the_shipped_table_alone(tmp_path, monkeypatch) -> None:
    shipped = tmp_path / "shipped.md"
    shipped.write_text("# shipped\n", encoding="utf-8")
    monkeypatch.setattr(rp, "RESULTS_MD", shipped)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert rp.main(["--table-only", "--only", "rl2-bandit-k5-n100", "--results", str(scratch)]) == 0
    assert shipped.read_text(encoding="utf-8") == "# shipped\n"
    assert rp.BEGIN in (scratch / "RESULTS.md").read_text(encoding="utf-8")
    explicit = tmp_path / "explicit.md"
    assert rp.main(["--table-only", "--results", str(scratch), "--markdown", str(explicit)]) == 0
    assert rp.BEGIN in explicit.read_text(encoding="utf-8") and shipped.read_text(encoding="utf-8") == "# shipped\n"


def test_a_changed_preset_value_reruns_the_seed_but_its_prose_does_not(tmp_path) -> None:
    preset = tmp_path / "my-rl2.yaml"
    body = "agent: rl2\nenv: metarl/Bandit-v0\nsource: {source}\nconfig:\n  learning_rate: {lr}\nenv_kwargs:\n  num_arms: 5\n"
    preset.write_text(body.format(source="first", lr=0.006))
    s = _setting(preset=str(preset))
    _fake_result(tmp_path, s, 0, 82.0)
    assert rp.load_result(tmp_path, s, 0) is not None
    preset.write_text(body.format(source="reworded, same values", lr=0.006))
    assert rp.load_result(tmp_path, s, 0) is not None
    preset.write_text(body.format(source="reworded, same values", lr=0.003))
    assert rp.load_result(tmp_path, s, 0) is None and rp.status(tmp_path, s, 0) == "new"


def test_a_seed_whose_preset_values_changed_trains_from_scratch_not_from_the_old_run(fake, tmp_path) -> None:
    preset = tmp_path / "my-rl2.yaml"
    body = "agent: rl2\nenv: metarl/Bandit-v0\nconfig:\n  learning_rate: {lr}\nenv_kwargs:\n  num_arms: 5\n"
    preset.write_text(body.format(lr=0.006))
    s = _setting(preset=str(preset), wall_minutes=1.0)
    rp.train_seed(s, 0, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=lambda m: None)
    assert rp.status(fake["root"], s, 0) == "done"
    preset.write_text(body.format(lr=0.001))
    assert rp.trains_differently(fake["root"], s, 0) and rp.status(fake["root"], s, 0) == "new"
    n = len(_calls(fake))
    said: list[str] = []
    res = rp.train_seed(s, 0, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=said.append)
    trains = [c for c in _calls(fake)[n:] if c.startswith("train ")]
    assert "--resume" not in trains[0] and "training from scratch" in said[0]
    # the old run's eval-it<N>.json (same iteration numbers here) were not taken for the new run's
    assert [c.split()[0] for c in _calls(fake)[n:] if not c.startswith("train ")] == ["_score"] * 3 + ["eval"]
    assert res["done"] and res["iterations"] == 14 and res["fingerprint"] == rp.fingerprint(s)
    # A longer budget alone continues the stored run (the MAML rows were extended that way).
    assert not rp.trains_differently(fake["root"], _setting(preset=str(preset), wall_minutes=2.0), 0)


def test_a_changed_evaluation_rescores_the_stored_checkpoints_without_training(fake) -> None:
    import dataclasses

    s = _setting(wall_minutes=1.0)
    first = rp.train_seed(s, 0, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=lambda m: None)
    assert "eval_trials" not in rp.fingerprint(s)  # results stored before the field existed still match
    more = dataclasses.replace(s, eval_trials=220)
    assert rp.load_result(fake["root"], more, 0) is None and rp.status(fake["root"], more, 0) == "rescore"
    n = len(_calls(fake))
    said: list[str] = []
    res = rp.train_seed(more, 0, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=said.append)
    new = _calls(fake)[n:]
    assert not any(c.startswith("train ") for c in new)
    assert [c.split()[0] for c in new] == ["_score"] * 3 + ["eval"]
    assert all(c.endswith(" --trials-per-task 220") for c in new[:3]) and "--trials-per-task 220" in new[3]
    assert [p["iteration"] for p in res["curve"]] == [4, 8, 11, 14] and res["score"] == 66.0 and first["score"] == 64.0
    assert [p["score"] for p in res["curve"]] == [56.0, 60.0, 63.0, 66.0]
    assert {k: res[k] for k in ("iterations", "wall_s", "env_steps", "loadavg")} == {k: first[k] for k in ("iterations", "wall_s", "env_steps", "loadavg")}
    assert res["fingerprint"] == rp.fingerprint(more) and rp.status(fake["root"], more, 0) == "done"
    assert "re-scoring its 4 checkpoints" in said[0] and "66 (re-scored)" in said[-1]
    # A checkpoint gone: nothing to re-score from, so the seed is continued (and scored) as usual.
    (rp.run_dir(fake["root"], s, 0) / "checkpoints" / "ckpt-000008.pt").unlink()
    assert rp.status(fake["root"], dataclasses.replace(s, eval_trials=30), 0) == "resume"
    # Training changed as well: no re-scoring.
    assert not rp.rescorable(fake["root"], dataclasses.replace(s, wall_minutes=2.0, eval_trials=220), 0)


def test_relabeled_scoring_is_an_evaluation_change_passed_to_both_scorers(fake) -> None:
    import dataclasses

    s = _setting(wall_minutes=1.0)
    first = rp.train_seed(s, 0, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=lambda m: None)
    assert "eval_relabel" not in rp.fingerprint(s)
    relabeled = dataclasses.replace(s, eval_relabel=True)
    assert rp.fingerprint(relabeled)["eval_relabel"] is True
    assert rp.status(fake["root"], relabeled, 0) == "rescore"
    n = len(_calls(fake))
    res = rp.train_seed(relabeled, 0, fake["root"], metarl_cmd=fake["cmd"], score_cmd=fake["score"], report=lambda m: None)
    new = _calls(fake)[n:]
    assert [c.split()[0] for c in new] == ["_score"] * 3 + ["eval"]
    assert all("--relabel True" in c for c in new)
    assert res["score"] == first["score"] + 0.5 and rp.status(fake["root"], relabeled, 0) == "done"
    _fake_result(fake["root"], relabeled, 1, 82.0)
    row = [line for line in rp.table([relabeled], fake["root"]).splitlines() if line.startswith("| toy ")][0]
    assert "(relabeled)" in row


def test_rows_scored_with_more_trials_say_so(tmp_path) -> None:
    import dataclasses

    s = dataclasses.replace(_setting(), eval_trials=200)
    _fake_result(tmp_path, s, 0, 82.0)
    row = [line for line in rp.table([s], tmp_path).splitlines() if line.startswith("| toy ")][0]
    assert "82 (200 trials per task)" in row


def test_a_run_row_shows_its_note_beside_the_seed_count(tmp_path) -> None:
    import dataclasses

    s = dataclasses.replace(_setting(), note="run on a faster day")
    _fake_result(tmp_path, s, 0, 82.0)
    rows = {line.split("|")[1].strip(): line for line in rp.table([s, _setting(name="plain")], tmp_path).splitlines() if line.startswith("| ")}
    assert "| 1/2 (run on a faster day) |" in rows["toy"] and "not run" not in rows["toy"]
    assert "| 0/2 |" in rows["plain"]
