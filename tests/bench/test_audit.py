"""Group signal_audit: the inactive cases measure an inactive detector, the active one
fails on a false positive (tests/bench/test_smoke.py runs each case once)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from bench import audit_cost, registry, runner
from bench.cases import audit
from signalaudit import audit_signal_skips

User = get_user_model()

pytestmark = pytest.mark.django_db(transaction=True)


def group_case(name: str) -> registry.Case:
    [found] = [c for c in registry.all_cases() if c.name == name]
    return found


@pytest.mark.parametrize("name", ["audit_create_plain", "audit_create_after_audit"])
def test_an_inactive_case_refuses_to_run_under_an_audit(name):
    with audit_signal_skips(), pytest.raises(runner.BenchError, match="still installed"):
        runner.run_cases([group_case(name)], size=4, repeat=1, using="default")


def test_the_active_case_fails_on_a_skip(monkeypatch):
    def bulk(users, using):
        return len(User.objects.bulk_create([User(**kwargs) for kwargs in users]))

    monkeypatch.setattr(audit, "_create_each", bulk)

    with pytest.raises(runner.BenchError, match=r"false positive.*bulk_create"):
        runner.run_cases([group_case("audit_create_active")], size=4, repeat=1, using="default")


def test_the_loop_is_the_issues_ten_thousand_creates_at_the_default_size():
    assert group_case("audit_create_active").size_for(20000) == 10000


def test_audit_cost_takes_turns_and_pairs_each_round_with_its_reference():
    results = audit_cost.run(size=8, rounds=3, using="default")

    assert [r.case.name for r in results] == [
        "audit_create_plain",
        "audit_create_after_audit",
        "audit_create_active",
    ]
    assert all(len(r.rates) == 3 and r.size == 4 for r in results)
    paired = audit_cost.paired_ratios(results)
    plain = results[0].rates
    assert paired["audit_create_active"] == [
        a / p for a, p in zip(results[2].rates, plain, strict=True)
    ]
    text = audit_cost.render_paired(paired, markdown=False)
    assert "audit_create_after_audit" in text and "audit_create_active" in text
    assert "| audit_create_active |" in audit_cost.render_paired(paired, markdown=True)
