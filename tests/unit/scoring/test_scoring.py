"""The learned correctness scorer: its input record, features, training, file format, calibration report,
the `scorer` verifier, and training examples from the store."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import verifiers  # noqa: F401  registers the plugins even without installed entry points
from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.errors import ConfigError, UserError
from cascade.optimize.scorer_data import store_examples
from cascade.protocols import VerifyContext
from cascade.scoring import Scorer, ScoringInput, calibration_report, features
from cascade.scoring.train import FitOptions, cross_fit, fit_scorer, fold_ids
from cascade.store import open_store
from cascade.types import Attempt, CascadeResult, Completion
from tests.unit.verifier_helpers import TIER, NoJudge, run
from verifiers.scorer import ScorerVerifier

ROOT = Path(__file__).resolve().parents[3]


def synthetic(n: int, seed: int = 0) -> tuple[list[ScoringInput], np.ndarray]:
    """Three-member votes on a question; the answer is right far more often when the members agree."""
    rng = np.random.default_rng(seed)
    inputs, labels = [], []
    for i in range(n):
        agree = int(rng.integers(1, 4))
        members = tuple(["B"] * agree + ["C", "D"][: 3 - agree])
        inputs.append(ScoringInput(f"question {i}?", "vote", 0, "B", "B", members=members))
        labels.append(bool(rng.random() < {1: 0.3, 2: 0.6, 3: 0.95}[agree]))
    return inputs, np.array(labels)


def test_features_read_agreement_members_and_logprobs() -> None:
    inp = ScoringInput(
        "What is 2+2?",
        "big",
        2,
        "4",
        "4",
        members=("4", "4", "5", None),
        member_weights=(1.0, 2.0, 1.0, 1.0),
        earlier=("4", "five"),
        earlier_members=((), ("4", "5")),
        logprobs=(math.log(0.9), math.log(0.5)),
        first_top=(math.log(0.9), math.log(0.05)),
    )
    f = features(inp)
    assert f["vote_share"] == pytest.approx(3 / 5)
    assert f["members_answered"] == pytest.approx(4 / 5)
    assert f["members_unanimous"] == 0.0
    assert f["earlier_share"] == 0.5 and f["earlier_last"] == 0.0
    # seen: earlier tier 0 answered "4", tier 1's members "4" and "5", this tier's members 4, 4, 5, None
    assert f["seen_share"] == pytest.approx(4 / 7)
    assert f["p_min"] == pytest.approx(0.5) and f["p_first"] == pytest.approx(0.9)
    assert f["p_margin"] == pytest.approx(0.85)
    assert f["form=number"] == 1.0 and f["tier=big"] == 1.0 and f["task=arithmetic"] == 1.0


def test_missing_signals_are_flags_never_confident_values() -> None:
    f = features(ScoringInput("q", "small", 0, None))
    assert f["logprobs_none"] == f["members_none"] == f["earlier_none"] == f["seen_none"] == 1.0
    assert f["form=none"] == 1.0
    assert "p_min" not in f and "vote_share" not in f


def test_record_from_a_live_verify_context() -> None:
    async def no_draw() -> tuple[Completion, str | None]:
        raise AssertionError

    previous = [
        Attempt(tier="a", model="m", answer="Lima", decision="escalate"),
        Attempt(tier="b", model="m", answer=None, decision="failed", error="timeout"),
    ]
    sample = Completion("Lima.", TIER.model, 5, 2, token_logprobs=(-0.1, -0.2))
    ctx = VerifyContext(
        query="Capital of Peru?",
        tier=TIER,
        tier_index=2,
        samples=[sample],
        answers=["Lima"],
        previous=previous,
        draw=no_draw,
        judge=NoJudge(),
        extract=str,
    )
    inp = ScoringInput.from_verify_context(ctx)
    assert (inp.tier, inp.tier_index, inp.answer, inp.raw) == ("small", 2, "Lima", "Lima.")
    assert inp.earlier == ("Lima",) and inp.earlier_members == ((),)  # a failed attempt is no evidence
    assert inp.logprobs == (-0.1, -0.2) and inp.first_top is None


def test_training_learns_the_signal_and_cross_fitting_holds_it() -> None:
    inputs, labels = synthetic(600)
    oof = cross_fit(inputs, labels, 5)
    report = calibration_report(oof, labels)
    assert report["auroc"] > 0.75
    assert report["brier"] < float(np.mean((labels.mean() - labels) ** 2))  # beats the base rate
    scorer = fit_scorer(inputs, labels)
    unanimous = ScoringInput("q?", "vote", 0, "B", "B", members=("B", "B", "B"))
    alone = ScoringInput("q?", "vote", 0, "B", "B", members=("B", "C", "D"))
    assert scorer.predict(unanimous) > 0.85 > 0.45 > scorer.predict(alone)
    assert set(scorer.heads) == {"*", "vote"}


def test_a_tier_with_few_examples_is_scored_by_the_shared_head() -> None:
    inputs, labels = synthetic(300)
    inputs += [ScoringInput("q?", "rare", 1, "B", members=("B", "B")) for _ in range(20)]
    labels = np.concatenate([labels, np.ones(20, dtype=bool)])
    scorer = fit_scorer(inputs, labels, FitOptions(min_head=100))
    assert "rare" not in scorer.heads and "vote" in scorer.heads


def test_training_may_be_restricted_to_named_features_and_one_hot_families() -> None:
    inputs, labels = synthetic(300)
    scorer = fit_scorer(inputs, labels, FitOptions(features=("vote_share", "tier=")))
    assert set(scorer.names) == {"vote_share", "tier=vote"}
    unanimous = ScoringInput("q?", "vote", 0, "B", "B", members=("B", "B", "B"))
    alone = ScoringInput("q?", "vote", 0, "B", "B", members=("B", "C", "D"))
    assert scorer.predict(unanimous) > scorer.predict(alone)  # what it kept still carries the signal


def test_one_class_gives_a_constant_head() -> None:
    inputs, _ = synthetic(50)
    scorer = fit_scorer(inputs, np.ones(50, dtype=bool))
    assert 0.9 < scorer.predict(inputs[0]) < 1.0


def test_bad_training_data_is_a_user_error() -> None:
    with pytest.raises(UserError, match="labels"):
        fit_scorer(synthetic(10)[0], [True])
    with pytest.raises(UserError, match="folds"):
        fold_ids(3, 5)


def test_the_file_round_trips_and_is_readable_json(tmp_path: Path) -> None:
    inputs, labels = synthetic(400)
    scorer = fit_scorer(inputs, labels, training={"sources": ["synthetic"]})
    path = scorer.save(tmp_path / "s.json")
    data = json.loads(path.read_text())
    assert data["format"] == "cascade-scorer" and data["version"] == 1
    assert data["features"] == list(scorer.names)
    assert data["training"]["sources"] == ["synthetic"] and data["training"]["n"] == 400
    assert data["heads"]["vote"]["calibration"]["kind"] == "sigmoid"
    loaded = Scorer.load(path)
    assert np.allclose(loaded.predict_many(inputs[:50]), scorer.predict_many(inputs[:50]))


def test_inference_needs_no_scikit_learn(tmp_path: Path) -> None:
    inputs, labels = synthetic(300)
    path = fit_scorer(inputs, labels).save(tmp_path / "s.json")
    expected = fit_scorer(inputs, labels).predict(inputs[0])
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from cascade.scoring import Scorer, ScoringInput\n"
        f"s = Scorer.load({str(path)!r})\n"
        "print(s.predict(ScoringInput('question 0?', 'vote', 0, 'B', 'B', members=" + repr(inputs[0].members) + ")))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert float(out.stdout) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=99), "version 99"),
        (lambda d: d.update(format="other"), "not a scorer file"),
        (lambda d: d["heads"]["*"].update(coef=[1.0]), "one per feature"),
        (lambda d: d["heads"]["*"].update(calibration={"kind": "magic"}), "calibration kind"),
        (lambda d: d.update(heads={}), "no heads"),
    ],
)
def test_a_bad_file_is_a_config_error_naming_it(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = fit_scorer(*synthetic(200)).to_json()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=rf"bad\.json: invalid scorer file: .*{message}"):
        Scorer.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        Scorer.load(tmp_path / "missing.json")


def test_calibration_report() -> None:
    perfect = calibration_report([0.0, 1.0, 1.0, 0.0], [False, True, True, False])
    assert perfect["brier"] == 0.0 and perfect["auroc"] == 1.0 and perfect["ece"] == 0.0
    assert [b["n"] for b in perfect["bins"]] == [2, 2]
    assert calibration_report([0.5, 0.5], [True, True])["auroc"] is None
    overconfident = calibration_report([0.9] * 10, [True] * 5 + [False] * 5)
    assert overconfident["ece"] == pytest.approx(0.4)


def _yaml(tmp_path: Path, scorer_path: str) -> Path:
    config = tmp_path / "cascade.yaml"
    config.write_text(
        "tiers:\n"
        "  - {name: vote, model: fake/small, answer: {format: choice}}\n"
        "  - {name: big, model: fake/big, answer: {format: choice}}\n"
        f"verifier: {{type: scorer, path: {scorer_path}}}\n"
        "router: {type: threshold, threshold: 0.5}\n"
    )
    return config


def test_the_verifier_reads_the_file_next_to_the_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, labels = synthetic(400)
    scorer = fit_scorer(inputs, labels)
    (tmp_path / "models").mkdir()
    scorer.save(tmp_path / "models" / "s.json")
    monkeypatch.chdir(ROOT)  # not the YAML's folder: the path must resolve against the YAML
    config = CascadeConfig.from_yaml(_yaml(tmp_path, "models/s.json"))
    fake = FakeCompleter({"fake/small": FakeReply("B"), "fake/big": FakeReply("C")})
    result = Cascade(config, completer=fake).run("Pick one?\nA) x\nB) y")
    first = result.attempts[0]
    expected = scorer.predict(ScoringInput("Pick one?\nA) x\nB) y", "vote", 0, "B", "B"))
    assert first.confidence == pytest.approx(expected)
    assert "scorer s.json: P(correct)" in first.reason and first.verifier_details["head"] == "vote"


def test_a_missing_scorer_file_is_a_located_config_error(tmp_path: Path) -> None:
    config = CascadeConfig.from_yaml(_yaml(tmp_path, "nowhere.json"))
    with pytest.raises(ConfigError, match=r"cascade\.yaml:4: verifier\.path: .*nowhere\.json: cannot read"):
        Cascade(config, completer=FakeCompleter({}))


def test_verifier_confidence_is_the_scorers_prediction() -> None:
    scorer = fit_scorer(*synthetic(300))
    sample = Completion("B", "fake", 1, 1)

    async def no_draw() -> tuple[Completion, str | None]:
        raise AssertionError

    ctx = VerifyContext(
        query="q?",
        tier=TIER,
        tier_index=0,
        samples=[sample],
        answers=["B"],
        previous=[],
        draw=no_draw,
        judge=NoJudge(),
        extract=str,
    )
    verdict = run(ScorerVerifier(scorer), ctx)
    assert verdict.confidence == pytest.approx(scorer.predict(ScoringInput.from_verify_context(ctx)))


def test_examples_from_labelled_runs_in_the_store(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "runs.sqlite"))
    attempts = [
        Attempt(tier="small", model="m1", answer="Paris", decision="escalate"),
        Attempt(tier="big", model="m2", answer="Lyon", decision="accept"),
    ]
    run_id = store.record_run(
        CascadeResult(query="Capital?", answer="Lyon", accepted=True, final_tier="big", attempts=attempts),
        config_name="c",
    )
    store.add_feedback(run_id, kind="label", value="Paris")
    thumbs = store.record_run(
        CascadeResult(query="2+2?", answer="4", accepted=True, final_tier="big", attempts=attempts[:1]),
        config_name="c",
    )
    store.add_feedback(thumbs, kind="thumbs_down")
    inputs, labels = store_examples(store, config_name="c")
    by_tier = {(inp.query, inp.tier): label for inp, label in zip(inputs, labels, strict=True)}
    assert by_tier == {("Capital?", "small"): True, ("Capital?", "big"): False, ("2+2?", "small"): False}
    big = next(i for i in inputs if i.tier == "big")
    assert big.earlier == ("Paris",) and big.tier_index == 1
    assert store_examples(store, config_name="other") == ([], [])
    store.close()


def test_training_examples_run_in_an_event_loop_free_context() -> None:
    # fit_scorer is synchronous and safe to call from inside a running loop (a serve worker)
    async def inside() -> float:
        return fit_scorer(*synthetic(200)).predict(synthetic(1)[0][0])

    assert 0.0 <= asyncio.run(inside()) <= 1.0


def test_a_package_path_names_a_file_shipped_in_the_package() -> None:
    from cascade.config.schema import resolve_data_path as resolve

    shipped = resolve("package://cascade/local/data/default_scorer.json", "/elsewhere/cascade.yaml")
    assert shipped.parent == ROOT / "cascade" / "local" / "data"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("package://no_such_package/x.json", "'no_such_package' is not an installed package"),
        ("package://os/x", "'os' is not an installed package"),
        ("package:///x", "a package path is package://PACKAGE/FILE"),
        ("package://cascade/", "a package path is package://PACKAGE/FILE"),
        ("package://cascade/../../../etc/passwd", "leads out of the package 'cascade'"),
    ],
)
def test_a_package_path_stays_inside_an_installed_package(path: str, message: str) -> None:
    """Issue 22.12: `package://os/x` and `package:///x` were tracebacks; `package://cascade/../..`
    read outside the package."""
    from cascade.config.schema import resolve_data_path as resolve

    with pytest.raises(ConfigError, match=message):
        resolve(path, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"format": "cascade-scorer", "version": 1, "features": ["a"], "heads": {"*": 5}}', "a head must be"),
        ('{"format": "cascade-scorer", "version": 1, "features": 5, "heads": {}}', "features must be a list"),
        (None, "not a regular file"),
        ("x" * 600_000, "larger than 500,000 bytes"),
    ],
    ids=["deep", "head", "features", "device", "large"],
)
def test_a_hostile_scorer_file_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, message: str
) -> None:
    """Issue 22.12: deep JSON, `calibration: 5`, a 300 MB file or /dev/zero were tracebacks (or 1.6 GB of RSS)."""
    from cascade.scoring import model

    monkeypatch.setattr(model, "MAX_FILE_BYTES", 500_000)
    path = Path("/dev/zero") if content is None else tmp_path / "s.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        Scorer.load(path)
    data = fit_scorer(*synthetic(50)).to_json()
    data["heads"]["*"]["calibration"] = 5
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="a calibration must be a JSON object"):
        Scorer.load(tmp_path / "c.json")


def test_cascade_validate_exits_2_on_a_scorer_path_out_of_its_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cascade.cli.main import main

    assert main(["validate", str(_yaml(tmp_path, "package://os/x"))]) == 2
    assert "'os' is not an installed package" in capsys.readouterr().err
