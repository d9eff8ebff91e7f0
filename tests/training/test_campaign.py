"""Promises of the long-campaign machinery: fresh data, native crops, time budgets and resuming
(tiny simulated runs: a 4-8 channel CNN on 33 px crops of Model I, a few steps)."""

import dataclasses

import pytest
import torch

from eqlens import checkpoint as ck
from eqlens.core.distributed import DistributedContext
from eqlens.core.run_config import TrainConfig
from eqlens.data.transforms import InputSpec
from eqlens.errors import DataError, TrainingError
from eqlens.evaluation.checkpoint import evaluate_checkpoint
from eqlens.simulation import configs, get_config
from eqlens.training import train
from eqlens.training import trainer as trainer_module
from eqlens.training.epoch_loop import Budget, stream_index_batches

from .conftest import TINY_CNN, assert_same_checkpoints


def _fresh(out, **kw):
    base = dict(model="cnn", data="model_i", out=str(out), epochs=2, batch_size=4, lr=3e-3, robustness_size=0,
                model_kwargs=TINY_CNN, crop=33, image_size=33, fresh_data=True, steps_per_epoch=2, val_size=6,
                test_size=6, device="cpu")
    return TrainConfig(**{**base, **kw})


def _context(rank, world):
    return DistributedContext(rank=rank, world_size=world, local_rank=rank)


def test_a_fresh_data_stream_never_gives_an_item_twice_across_epochs_and_ranks():
    seen = []
    for epoch in (1, 2, 3):
        for rank in (0, 1):
            for batch in stream_index_batches(epoch, steps=5, batch_size=4, context=_context(rank, 2)):
                assert len(batch) == 4
                seen += batch
    assert len(seen) == len(set(seen)) == 3 * 2 * 5 * 4
    assert sorted(seen) == list(range(len(seen)))  # the stream is walked in order: nothing skipped


class _OneEpochBudget(Budget):
    """A budget that holds exactly one epoch, whatever the machine's speed."""

    def fits_another(self) -> bool:
        return not self.measured


def test_a_budgeted_fresh_run_stops_then_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    whole = train(_fresh(tmp_path / "whole"))
    assert not whole.budget_spent
    card = ck.load_checkpoint(tmp_path / "whole")[1]
    assert card.training["fresh_data"] and card.complete
    assert card.training["images_seen"] == 2 * 2 * 4 and card.training["wall_time_s"] > 0
    assert card.input.crop == 33 and card.data["sizes"]["train"] == "stream"

    monkeypatch.setattr(trainer_module, "Budget", _OneEpochBudget)
    first = train(_fresh(tmp_path / "cut", time_budget_min=60.0))
    assert first.budget_spent and [h["epoch"] for h in first.history] == [1]
    assert ck.load_checkpoint(tmp_path / "cut")[1].complete is False
    monkeypatch.setattr(trainer_module, "Budget", Budget)
    resumed = train(_fresh(tmp_path / "cut", time_budget_min=60.0, resume=True))
    assert not resumed.budget_spent and [h["epoch"] for h in resumed.history] == [1, 2]
    assert_same_checkpoints(tmp_path / "whole", tmp_path / "cut")


def test_a_budget_that_cannot_hold_one_epoch_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TrainingError, match="Nothing was written"):
        train(_fresh(tmp_path / "run", time_budget_min=1e-6))
    assert not (tmp_path / "run").exists()


def test_the_budget_starts_another_epoch_only_while_the_longest_one_still_fits():
    budget = Budget(minutes=1.0, estimate_s=20.0)
    assert budget.fits_another()
    budget.record(25.0)
    assert budget.fits_another()  # 25 + 25 <= 60
    budget.record(20.0)
    assert not budget.fits_another()  # 45 + 25 > 60
    assert Budget(None, 1e9).fits_another()


def test_a_resume_with_another_crop_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "Budget", _OneEpochBudget)
    train(_fresh(tmp_path / "run", time_budget_min=60.0))
    with pytest.raises(TrainingError, match="crop"):
        train(_fresh(tmp_path / "run", crop=35, image_size=33, resume=True))


@pytest.mark.parametrize("change, message", [
    (dict(crop=151), "larger than the 150 px"),
    (dict(fresh_data=True, steps_per_epoch=None), "needs steps_per_epoch"),
    (dict(time_budget_min=float("nan")), "time_budget_min"),
    (dict(crop=0), "crop must be a positive integer"),
    (dict(threads=0), "threads must be a positive integer"),
])
def test_bad_campaign_settings_get_a_clear_message(tmp_path, change, message):
    with pytest.raises(TrainingError, match=message):
        train(_fresh(tmp_path / "run", **change))
    assert not (tmp_path / "run").exists()


def test_fresh_data_from_a_folder_is_refused(tmp_path, lens_folder):
    with pytest.raises(DataError, match="fresh data is drawn from the simulator"):
        train(_fresh(tmp_path / "run", data=str(lens_folder), crop=None, image_size=24))


def test_evaluation_and_predict_apply_the_cards_crop(tmp_path):
    from eqlens.checkpoint import predict
    from eqlens.data.simulated import SimulatedLensDataset
    from eqlens.evaluation.checkpoint import evaluate_checkpoint

    train(_fresh(tmp_path / "run", epochs=1))
    model, card = ck.load_checkpoint(tmp_path / "run")
    report = evaluate_checkpoint(tmp_path / "run", size=6, robustness_size=0, device="cpu")
    assert report["data"]["crop"] == 33 and report["data"]["image_size"] == 33
    raw = SimulatedLensDataset("model_i", "test", 3, seed=0).simulator.simulate(2, torch.arange(3)).images
    assert card.input == InputSpec(33, 33, True)
    model.eval()
    with torch.no_grad():
        expected = model(card.input.prepare(raw)).softmax(-1)
    assert torch.allclose(predict(model, card, raw).values, expected, atol=1e-6)
    uncropped = card.replace(input=InputSpec(33, None, True))
    assert not torch.allclose(predict(model, uncropped, raw).values, expected)


def test_precise_bn_recomputes_the_statistics_from_training_batches_and_keeps_runs_reproducible(tmp_path):
    plain = train(_fresh(tmp_path / "plain", epochs=1))
    precise = train(_fresh(tmp_path / "precise", epochs=1, recalibrate_bn=2))
    again = train(_fresh(tmp_path / "again", epochs=1, recalibrate_bn=2))
    assert_same_checkpoints(tmp_path / "precise", tmp_path / "again")
    a, b = plain.model.state_dict(), precise.model.state_dict()
    weights = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(a[k], b[k]) for k in weights)  # the training itself is untouched
    means = [k for k in a if k.endswith("running_mean")]
    assert means and any(not torch.allclose(a[k], b[k]) for k in means)
    assert all(int(b[k.replace("running_mean", "num_batches_tracked")]) == 2 for k in means)
    assert again.history[0]["bn_recalibrated"] == 2 and plain.history[0]["bn_recalibrated"] == 0


def test_precise_bn_may_be_switched_on_when_a_campaign_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "Budget", _OneEpochBudget)
    train(_fresh(tmp_path / "run", time_budget_min=60.0))
    monkeypatch.setattr(trainer_module, "Budget", Budget)
    resumed = train(_fresh(tmp_path / "run", time_budget_min=60.0, resume=True, recalibrate_bn=2))
    assert [h["bn_recalibrated"] for h in resumed.history] == [0, 2]


def _as_before_configs_were_recorded(run) -> None:
    """Make ``run``'s resume state one written before 2026-12-02: its config names its data, nothing more."""
    last = run / ck.LAST_DIR
    state = ck.load_state(last)
    del state["config"]["simulation_config"]
    torch.save(state, last / ck.STATE_FILE)


def test_a_resumed_run_whose_state_records_no_simulation_config_goes_on_with_the_line_vortex(tmp_path, monkeypatch):
    # The first epoch as campaigns/flagship_gcnn ran it: model_i drew the vortex as the closed-form line then.
    line = get_config("model_i_line")
    monkeypatch.setitem(configs._CONFIGS, "model_i", dataclasses.replace(line, name="model_i"))
    monkeypatch.setattr(trainer_module, "Budget", _OneEpochBudget)
    train(_fresh(tmp_path / "cut", time_budget_min=60.0))
    _as_before_configs_were_recorded(tmp_path / "cut")
    monkeypatch.undo()  # today: model_i draws 100 point masses
    with pytest.warns(UserWarning, match="line"):
        train(_fresh(tmp_path / "cut", time_budget_min=60.0, resume=True))
    card = ck.read_card(tmp_path / "cut")
    assert card.simulation_config.vortex_model == "line" and card.complete
    assert ck.load_state(tmp_path / "cut" / ck.LAST_DIR)["config"]["simulation_config"]["vortex_model"] == "line"
    # the weights of an uninterrupted run on the line, not those of one on today's model_i
    train(_fresh(tmp_path / "line", data="model_i_line"))
    assert_same_checkpoints(tmp_path / "line", tmp_path / "cut")
    train(_fresh(tmp_path / "points"))
    with pytest.raises(AssertionError):
        assert_same_checkpoints(tmp_path / "points", tmp_path / "cut")


def test_a_resumed_run_renders_the_config_its_state_records_even_after_the_name_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "Budget", _OneEpochBudget)
    train(_fresh(tmp_path / "cut", time_budget_min=60.0))  # model_i: point masses, recorded
    monkeypatch.setattr(trainer_module, "Budget", Budget)
    monkeypatch.setitem(configs._CONFIGS, "model_i", dataclasses.replace(get_config("model_i_line"), name="model_i"))
    with pytest.warns(UserWarning, match="point masses"):
        train(_fresh(tmp_path / "cut", time_budget_min=60.0, resume=True))
    assert ck.read_card(tmp_path / "cut").simulation_config.vortex_model == "points"


def test_evaluate_defaults_to_the_data_the_card_records_and_reads_an_old_card_as_the_line(tmp_path):
    train(_fresh(tmp_path / "run", epochs=1, steps_per_epoch=1))
    model, card = ck.load_checkpoint(tmp_path / "run")
    assert card.simulation_config == get_config("model_i")
    old = {k: v for k, v in card.data.items() if k != "simulation_config"}
    ck.write_checkpoint(tmp_path / "old", model, card.replace(data=old))
    now = evaluate_checkpoint(tmp_path / "run", robustness_size=0, device="cpu")
    before = evaluate_checkpoint(tmp_path / "old", robustness_size=0, device="cpu")
    assert now["data"]["simulation_config"]["vortex_model"] == "points"
    assert before["data"]["simulation_config"]["vortex_model"] == "line" and before["data"]["spec"] == "model_i_line"
    # an explicit config drawing the same scenes keeps the card's split and seed: the old card's images again
    chosen = evaluate_checkpoint(tmp_path / "run", "model_i_line", robustness_size=0, device="cpu")
    assert chosen["data"]["spec"] == "model_i_line" and chosen["n"] == now["n"] == before["n"] == 6
    assert [r["probabilities"] for r in chosen["predictions"]] == [r["probabilities"] for r in before["predictions"]]
    assert [r["probabilities"] for r in now["predictions"]] != [r["probabilities"] for r in before["predictions"]]


def test_a_stream_start_walks_on_from_that_item_and_never_back():
    first = [i for b in stream_index_batches(1, steps=3, batch_size=4, context=_context(0, 1), stream_start=100)
             for i in b]
    assert first == list(range(100, 112))
    second = stream_index_batches(2, steps=3, batch_size=4, context=_context(0, 1), stream_start=100)
    assert second[0][0] == 112


def test_a_stream_start_without_fresh_data_is_refused(tmp_path):
    with pytest.raises(TrainingError, match="stream_start walks the fresh-data stream"):
        _fresh(tmp_path / "run", fresh_data=False, steps_per_epoch=None, stream_start=10)


def test_a_resume_with_another_stream_start_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "Budget", _OneEpochBudget)
    train(_fresh(tmp_path / "run", time_budget_min=60.0, stream_start=8))
    with pytest.raises(TrainingError, match="stream_start was 8, now 0"):
        train(_fresh(tmp_path / "run", resume=True))
