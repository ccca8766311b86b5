"""A/B tests: stable hashed assignment, per-variant stats from the store, and the significance verdict."""

from __future__ import annotations

import argparse
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from cascade.cli import ab as cli_ab
from cascade.errors import UserError
from cascade.eval.data.formats import read_log
from cascade.learning.ab import (
    Criterion,
    VariantStats,
    ab_report,
    assign,
    decide,
    fixed_pair,
    two_proportion_z,
    unit_hash,
)
from cascade.store import Store, open_store
from cascade.types import Attempt, CascadeResult

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
GSM8K = DATA / "routellm" / "gsm8k_responses.csv"
needs_data = pytest.mark.skipif(not GSM8K.exists(), reason="../shared/data is not available")
MIXTRAL, GPT4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"

Outcome = Callable[[int], tuple[bool, int, float]]  # request index -> (correct, tokens, cost)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(str(tmp_path / "ab.sqlite"))
    yield opened
    opened.close()


def result(run_id: str, tier: str, correct: bool, tokens: int, cost: float) -> CascadeResult:
    attempt = Attempt(
        tier=tier, model=f"fake/{tier}", answer="42" if correct else "41", prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2, cost_usd=cost, decision="accept",
    )  # fmt: skip
    return CascadeResult(query=f"q{run_id}", answer=attempt.answer, accepted=True, final_tier=tier, attempts=[attempt])


def replay(store: Store, n: int, configs: dict[str, Outcome], *, salt: str = "exp", name: str = "prod") -> None:
    """Send `n` requests through the configs by hashed assignment; label every run by thumbs."""
    for i in range(n):
        variant = assign(f"user-{i}", list(configs), salt=salt)
        correct, tokens, cost = configs[variant](i)
        run_id = store.record_run(
            result(f"{name}-{i}", variant, correct, tokens, cost), config_name=name, variant=variant
        )
        store.add_feedback(run_id, kind="thumbs_up" if correct else "thumbs_down")


def bernoulli(p: float, tokens: int, cost: float, seed: int) -> Outcome:
    draws = np.random.default_rng(seed).random(10_000) < p
    return lambda i: (bool(draws[i]), tokens, cost)


class TestAssign:
    def test_a_key_always_gets_the_same_variant(self) -> None:
        first = [assign(f"k{i}", ["a", "b"], salt="s") for i in range(200)]
        assert first == [assign(f"k{i}", ["a", "b"], salt="s") for i in range(200)]

    def test_the_hash_is_sha256_not_pythons_salted_hash(self) -> None:
        assert unit_hash("x") == int("2d711642b726b044", 16) / 2**64  # sha256("x") starts 2d711642b726b044

    def test_traffic_splits_in_proportion_to_the_weights(self) -> None:
        counts = Counter(assign(f"user-{i}", {"a": 0.2, "b": 0.8}) for i in range(20_000))
        assert counts["a"] / 20_000 == pytest.approx(0.2, abs=0.01)

    def test_a_new_salt_reshuffles_users(self) -> None:
        a = [assign(f"k{i}", ["a", "b"], salt="one") for i in range(500)]
        b = [assign(f"k{i}", ["a", "b"], salt="two") for i in range(500)]
        assert 0.4 < np.mean([x == y for x, y in zip(a, b, strict=True)]) < 0.6

    def test_a_zero_weight_variant_gets_no_traffic(self) -> None:
        assert {assign(f"k{i}", {"a": 1.0, "off": 0.0}) for i in range(500)} == {"a"}

    @pytest.mark.parametrize("variants", [{}, {"a": -1.0, "b": 2.0}, {"a": 0.0}])
    def test_bad_weights_are_refused(self, variants: dict[str, float]) -> None:
        with pytest.raises(UserError):
            assign("k", variants)


class TestStatistics:
    def test_two_proportion_z_matches_the_textbook_value(self) -> None:
        z, p = two_proportion_z(60, 100, 40, 100)
        assert z == pytest.approx(2.828, abs=1e-3)
        assert p == pytest.approx(0.00468, abs=1e-4)

    def test_statsmodels_agrees_with_the_hand_written_test_it_replaced(self) -> None:
        def by_hand(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
            pooled = (k1 + k2) / (n1 + n2)
            z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
            return z, math.erfc(abs(z) / math.sqrt(2))

        rng = np.random.default_rng(3)
        for _ in range(50):
            n1, n2 = (int(n) for n in rng.integers(5, 500, 2))
            k1, k2 = int(rng.integers(1, n1)), int(rng.integers(1, n2))
            assert two_proportion_z(k1, n1, k2, n2) == pytest.approx(by_hand(k1, n1, k2, n2), rel=1e-9, abs=1e-12)

    def test_identical_arms_give_no_evidence(self) -> None:
        assert two_proportion_z(10, 10, 10, 10) == (0.0, 1.0)
        assert two_proportion_z(0, 0, 3, 5) == (0.0, 1.0)

    def test_too_few_labels_is_not_yet_significant(self) -> None:
        a, b = VariantStats("a", 5, outcomes=[1] * 5), VariantStats("b", 5, outcomes=[0] * 5)
        report = decide([a, b], min_labelled=20)
        assert report.winner is None and "fewer than 20" in report.verdict

    def test_aa_tests_rarely_declare_a_winner(self) -> None:
        """The false-positive rate over many simulated A/A tests stays near alpha (0.05)."""
        rng = np.random.default_rng(7)
        arms = (rng.random((100, 2, 200)) < 0.7).astype(int)
        winners = [
            decide([VariantStats("a", 200, outcomes=list(a)), VariantStats("b", 200, outcomes=list(b))]).winner
            for a, b in arms
        ]
        assert sum(w is not None for w in winners) <= 10

    def test_peeking_after_every_batch_of_labels_keeps_the_false_positive_rate(self) -> None:
        """A/A streams read every 50 labels up to 1,000: the old fixed-sample z-test, re-run at every
        look, finds a 'winner' in about a quarter of them; the always-valid sequence stays under alpha."""
        rng = np.random.default_rng(11)
        sims, looks = 120, range(50, 1001, 50)
        sequential = naive = 0
        for _ in range(sims):
            to_a, right = rng.random(1000) < 0.5, (rng.random(1000) < 0.7).astype(int)
            seq_found = naive_found = False
            for t in looks:
                a, b = arm("a", to_a[:t], right[:t]), arm("b", ~to_a[:t], right[:t])
                seq_found = seq_found or decide([a, b]).winner is not None
                lead, other = (a, b) if (a.em or 0) >= (b.em or 0) else (b, a)
                naive_found = naive_found or fixed_pair(lead, other, 0.05, Criterion()).significant
            sequential, naive = sequential + seq_found, naive + naive_found
        assert sequential / sims <= 0.08  # alpha 0.05 plus sampling slack for 120 simulations
        assert naive / sims >= 0.15  # what peeking did before

    def test_net_benefit_weighs_em_against_cost(self) -> None:
        """Strong: EM 0.85 at $0.01 a run; weak: EM 0.55 at $0.001. A right answer worth $0.1 makes the
        strong one pay (+$0.021/run); worth $0.01, the weak one does (−$0.006 for strong)."""
        rng = np.random.default_rng(5)
        to_a = rng.random(4000) < 0.5
        right = np.where(to_a, rng.random(4000) < 0.85, rng.random(4000) < 0.55).astype(int)
        strong, weak = arm("strong", to_a, right, cost=0.01), arm("weak", ~to_a, right, cost=0.001)
        assert decide([strong, weak], criterion=Criterion(value_per_correct=0.1)).winner == "strong"
        cheap = decide([strong, weak], criterion=Criterion(value_per_correct=0.01))
        assert cheap.winner == "weak" and cheap.comparisons[0].diff == pytest.approx(0.006, abs=0.0015)
        assert cheap.comparisons[0].em_diff < -0.25  # weak wins although its EM is far lower
        assert decide([strong, weak]).winner == "strong"  # on EM alone

    def test_price_per_token_prices_runs_without_dollar_costs(self) -> None:
        rng = np.random.default_rng(6)
        to_a = rng.random(3000) < 0.5
        right = (rng.random(3000) < 0.8).astype(int)
        long, short = arm("long", to_a, right, tokens=2000.0), arm("short", ~to_a, right, tokens=100.0)
        report = decide([long, short], criterion=Criterion(value_per_correct=0.01, price_per_token=1e-6))
        assert report.winner == "short" and "net benefit" in report.verdict

    def test_a_fixed_horizon_test_waits_for_the_horizon_then_uses_only_it(self) -> None:
        rng = np.random.default_rng(8)
        to_a = rng.random(2000) < 0.5
        right = np.where(to_a, rng.random(2000) < 0.8, rng.random(2000) < 0.6).astype(int)
        a, b = arm("a", to_a[:300], right[:300]), arm("b", ~to_a[:300], right[:300])
        early = decide([a, b], horizon=400)
        assert early.winner is None and "fixed horizon of 400" in early.verdict and early.comparisons == []
        full = decide([arm("a", to_a, right), arm("b", ~to_a, right)], horizon=400)
        assert full.winner == "a" and full.method.startswith("fixed horizon")
        assert full.variants[0].labelled > 400  # the stats show all runs; the test used the first 400 of each

    def test_one_variant_has_nothing_to_compare(self) -> None:
        assert decide([VariantStats("a", 50, outcomes=[1] * 50)]).winner is None


def arm(name: str, mine: np.ndarray, right: np.ndarray, *, cost: float = 0.0, tokens: float = 100.0) -> VariantStats:
    """One variant of a simulated stream: the labelled runs where `mine`, in stream order."""
    order = np.flatnonzero(mine)
    n = len(order)
    return VariantStats(
        name, runs=n, tokens=tokens * n, cost_usd=cost * n, outcomes=right[order].tolist(),
        label_tokens=[tokens] * n, label_cost=[cost] * n, order=(order + 1).tolist(),
    )  # fmt: skip


class TestReplayedAB:
    def test_the_clearly_better_config_wins(self, store: Store) -> None:
        replay(store, 300, {"weak": bernoulli(0.55, 100, 0.001, 1), "strong": bernoulli(0.85, 300, 0.01, 2)})
        report = ab_report(store, config_name="prod")
        assert report.winner == "strong", report.verdict
        comparison = report.comparisons[0]
        assert comparison.p_value < 0.001 and comparison.ci[0] > 0

    def test_tokens_and_cost_are_reported_per_variant(self, store: Store) -> None:
        replay(store, 200, {"weak": bernoulli(0.55, 100, 0.001, 1), "strong": bernoulli(0.85, 300, 0.01, 2)})
        stats = {v.name: v for v in ab_report(store).variants}
        assert stats["weak"].mean_tokens == 100 and stats["strong"].mean_cost_usd == pytest.approx(0.01)
        assert stats["weak"].runs + stats["strong"].runs == 200 == stats["weak"].labelled + stats["strong"].labelled

    def test_an_aa_test_is_not_significant(self, store: Store) -> None:
        same = bernoulli(0.7, 100, 0.001, 3)
        replay(store, 400, {"A": same, "A'": same})
        report = ab_report(store)
        assert report.winner is None and report.verdict.startswith("not yet significant")

    def test_runs_of_other_configs_are_left_out(self, store: Store) -> None:
        replay(store, 150, {"weak": bernoulli(0.5, 100, 0.001, 1), "strong": bernoulli(0.9, 300, 0.01, 2)})
        replay(store, 100, {"x": bernoulli(0.5, 1, 0.0, 4), "y": bernoulli(0.5, 1, 0.0, 5)}, name="other")
        assert [v.name for v in ab_report(store, config_name="prod").variants] == ["strong", "weak"]

    def test_the_latest_feedback_is_the_label(self, store: Store) -> None:
        replay(store, 40, {"a": bernoulli(1.0, 1, 0.0, 1), "b": bernoulli(1.0, 1, 0.0, 2)})
        for run in store.runs(limit=100):
            store.add_feedback(run.run_id, kind="thumbs_down")
        assert all(v.em == 0.0 and v.labelled == v.runs for v in ab_report(store).variants)


@needs_data
class TestOnTheRouteLLMLog:
    """Two single-model configs replayed on RouteLLM's logged GSM8K outputs (GPT-4 86% vs Mixtral 64%)."""

    @staticmethod
    def logged(model: str) -> Outcome:
        items = read_log(GSM8K).select([MIXTRAL, GPT4]).items
        return lambda i: (
            bool(items[i].tiers[model].correct),
            items[i].tiers[model].tokens or 0,
            items[i].tiers[model].cost_usd,
        )

    def test_gpt4_beats_mixtral(self, store: Store) -> None:
        replay(store, 500, {"mixtral": self.logged(MIXTRAL), "gpt4": self.logged(GPT4)})
        report = ab_report(store)
        assert report.winner == "gpt4", report.verdict
        stats = {v.name: v for v in report.variants}
        assert (stats["gpt4"].mean_cost_usd or 0) > 10 * (stats["mixtral"].mean_cost_usd or 0)

    def test_mixtral_against_itself_is_not_significant(self, store: Store) -> None:
        replay(store, 500, {"A": self.logged(MIXTRAL), "B": self.logged(MIXTRAL)})
        assert ab_report(store).winner is None


class TestCli:
    def parse(self, *argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        cli_ab.add_parser(parser.add_subparsers(dest="command"))
        return parser.parse_args(["ab", *argv])

    def render(self, args: argparse.Namespace) -> str:
        buffer = io.StringIO()
        assert cli_ab.run(args, Console(file=buffer, color_system=None, width=140)) == 0
        return buffer.getvalue()

    def test_report_prints_the_table_and_the_winner(self, store: Store, tmp_path: Path) -> None:
        replay(store, 200, {"weak": bernoulli(0.5, 100, 0.001, 1), "strong": bernoulli(0.9, 300, 0.01, 2)})
        text = self.render(self.parse("report", "--dsn", str(tmp_path / "ab.sqlite")))
        assert "strong ★" in text and "verdict: strong wins on EM" in text and "always-valid sequential" in text

    def test_json_output(self, store: Store, tmp_path: Path) -> None:
        replay(store, 100, {"A": bernoulli(0.7, 1, 0.0, 3), "B": bernoulli(0.7, 1, 0.0, 3)})
        data = json.loads(self.render(self.parse("report", "--dsn", str(tmp_path / "ab.sqlite"), "--json")))
        assert data["winner"] is None and {v["name"] for v in data["variants"]} == {"A", "B"}

    def test_an_empty_store_says_so(self, tmp_path: Path) -> None:
        open_store(str(tmp_path / "empty.sqlite")).close()
        assert "no runs with a variant" in self.render(self.parse("report", "--dsn", str(tmp_path / "empty.sqlite")))

    def test_a_store_that_is_not_there_is_named_not_created(self, tmp_path: Path) -> None:
        missing = tmp_path / "typo.sqlite"
        with pytest.raises(UserError, match=f"no store at {missing}"):
            cli_ab.run(self.parse("report", "--dsn", str(missing)))
        assert not missing.exists()

    def test_bad_alpha_is_a_user_error(self, tmp_path: Path) -> None:
        with pytest.raises(UserError):
            cli_ab.run(self.parse("report", "--dsn", str(tmp_path / "x.sqlite"), "--alpha", "2"))
