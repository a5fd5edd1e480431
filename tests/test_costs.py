"""The stored method-cost benchmark: the reader verifies it, and a tiny real run is readable."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from learntolearn.reporting import costs

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "method_costs.py"


def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("method_costs", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def record(seconds: dict[tuple[str, str], list[float]]) -> dict:
    """A hand-made benchmark record with the given per-round seconds (meta-batch 4)."""
    return {
        "format": costs.FORMAT,
        "command": "test",
        "profile": "smoke",
        "rounds": len(next(iter(seconds.values()))),
        "warmup_rounds": 1,
        "max_seconds": 5.0,
        "machine": {"device": "cpu (test)", "cores": 2, "torch": "x", "threads": 1},
        "commit": "0123456789abcdef",
        "dirty": False,
        "date": "2026-12-07T00:00:00+00:00",
        "load_1min": {"before": 1.0, "during": [2.0, 3.0, 4.0], "after": 1.5},
        "note": "",
        "entries": [
            {
                "method": m,
                "setting": s,
                "experiment": f"omniglot/{m}-{s}",
                "meta_batch": 4,
                "inner_steps": 1,
                "seconds": t,
                "sample_seconds": [0.01] * len(t),
                "saved_bytes": 2.0**20 * (2 if m == "maml" else 1),
            }
            for (m, s), t in seconds.items()
        ],
        "left_out": [{"method": "maml", "setting": "20w5s", "reason": "too slow"}],
    }


def test_ratios_are_taken_within_rounds(tmp_path: Path) -> None:
    # fomaml takes half of MAML's time in every round, though rounds differ threefold
    path = tmp_path / "method-costs.json"
    stored = costs.save(
        path,
        record({("maml", "5w1s"): [1.0, 3.0, 2.0], ("fomaml", "5w1s"): [0.5, 1.5, 1.0]}),
    )
    assert stored.ratio("fomaml", "5w1s") == pytest.approx(0.5)
    assert stored.speedup("fomaml", "5w1s") == pytest.approx(0.5)
    assert stored.memory_ratio("fomaml", "5w1s") == pytest.approx(2.0)
    c = stored["maml", "5w1s"]
    assert c.median == 2.0 and c.per_task == 0.5 and c.iqr == (1.5, 2.5)
    assert stored.load_average == (1.0, 3.0, 1.5)
    table = stored.table(["maml", "fomaml"], ["5w1s"], caption="Costs", name="tbl-99-costs")
    assert [r[1] for r in table.rows] == ["MAML", "first-order MAML"]
    assert table.rows[1][6] == "0.50"
    with pytest.raises(KeyError, match="too slow"):
        stored["maml", "20w5s"]


@pytest.mark.parametrize("damage", ["edit", "truncate", "no-checksum"])
def test_reader_refuses_a_damaged_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "method-costs.json"
    costs.save(path, record({("maml", "5w1s"): [1.0, 2.0, 3.0]}))
    if damage == "edit":  # still valid JSON, different numbers
        data = json.loads(path.read_text())
        data["entries"][0]["seconds"][0] = 0.1
        path.write_text(json.dumps(data))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:50])
    else:
        path.with_name(path.name + ".sha256").unlink()
    error = FileNotFoundError if damage == "no-checksum" else ValueError
    with pytest.raises(error) as info:
        costs.load(path)
    message = str(info.value)
    assert "\n" not in message and "method_costs.py" in message


def test_a_tiny_benchmark_run_is_readable(real_env: None, tmp_path: Path) -> None:
    out = tmp_path / "method-costs.json"
    args = ["--profile", "smoke", "--methods", "maml", "protonet", "--settings", "5w1s"]
    code = benchmark().main([*args, "--rounds", "1", "--max-seconds", "60", "--output", str(out)])
    assert code == 0
    stored = costs.load(out)
    assert set(stored.costs) == {("maml", "5w1s"), ("protonet", "5w1s")}
    assert stored.rounds == 1 and stored.record["machine"]["threads"] == 1
    for c in stored.costs.values():
        assert len(c.seconds) == 1 and c.median > 0 and c.saved_bytes
        assert 0 < c.sampling < c.median
    assert stored.ratio("maml", "5w1s") == 1.0
    assert "interleaved rounds" in stored.provenance()


def test_the_koch_benchmark_is_stored_checked_and_read(tmp_path: Path) -> None:
    """The Koch benchmark's record: medians and the per-round ratio read back, Koch's schedule
    in CPU-hours, and a damaged file refused with a one-line error."""
    from learntolearn.io import save_checked_json
    from learntolearn.reporting.costs import KOCH_EPOCHS, KOCH_PAIRS, load_koch

    record = {
        "format": 1,
        "machine": "cpu (test)",
        "torch": "x",
        "threads": 1,
        "commit": "abc",
        "dirty": False,
        "date": "2026-12-07T00:00:00+00:00",
        "load_1min": {"before": 0.5, "after": 0.5},
        "rounds": 3,
        "pairs_per_step": 256,
        "book": {"parameters": 10, "seconds": [0.1, 0.2, 0.1]},
        "koch": {"parameters": 1000, "seconds": [4.0, 2.0, 3.0]},
    }
    path = tmp_path / "koch-siamese.json"
    save_checked_json(path, record)
    koch = load_koch(path)
    assert (koch.book_seconds, koch.koch_seconds) == (0.1, 3.0)
    assert koch.ratio == 30.0  # per round: 40, 10, 30
    assert koch.schedule_hours == pytest.approx(KOCH_PAIRS * KOCH_EPOCHS / 256 * 3.0 / 3600)
    assert "3 interleaved rounds" in koch.provenance()
    path.write_text(path.read_text().replace("4.0", "5.0"))
    with pytest.raises(ValueError, match="does not match its checksum"):
        load_koch(path)


def test_a_run_no_stored_run_measures_is_planned_from_the_benchmarks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plan`` gives a run with no cost of its own (Koch's network: no cpu or smoke run) the
    benchmark's seconds per iteration when passed :func:`costs.step_estimate`, and none
    without it; a run the benchmark did not time stays unknown."""
    from learntolearn.catalogue.plan import plan
    from learntolearn.io import save_checked_json

    monkeypatch.setenv("LEARNTOLEARN_RESULTS", str(tmp_path / "results"))
    koch = {
        "book": {"parameters": 1, "seconds": [0.1]},
        "koch": {"parameters": 9, "seconds": [2.0]},
    }
    save_checked_json(tmp_path / "koch-siamese.json", {"format": 1, **koch})
    monkeypatch.setattr(costs, "default_path", lambda: tmp_path / "method-costs.json")
    record_ = record({("maml", "5w1s"): [0.5, 0.4, 0.6], ("matching", "5w1s"): [0.1, 0.1, 0.1]})
    save_checked_json(tmp_path / "method-costs.json", record_)
    names = ["omniglot/siamese-koch-lake", "omniglot/maml-5w1s", "omniglot/relation-5w1s"]
    ablations = ["omniglot/matching-5w1s-long", "omniglot/matching-5w1s-fce"]
    bare, _ = plan(names, "paper", "cpu")
    assert [s.seconds for s in bare] == [None, None, None]
    steps, _ = plan([*names, *ablations], "paper", "cpu", fallback=costs.step_estimate)
    koch_run, maml, relation, long, fce = steps
    assert long.seconds == pytest.approx(0.1 * long.total) and long.total == 80_000
    assert fce.seconds is None  # a network of its own: the run's step does not time it
    assert koch_run.seconds == pytest.approx(2.0 * koch_run.total)
    assert "koch_siamese" in koch_run.basis
    assert maml.seconds == pytest.approx(0.5 * maml.total)
    assert relation.seconds is None
    gpu, _ = plan(names, "paper", "cuda", fallback=costs.step_estimate)
    assert [s.seconds for s in gpu] == [None, None, None]  # the benchmarks timed a CPU
