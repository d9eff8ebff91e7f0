"""Promises of the few-shot experiment: the 3-class model starts from the 2-class checkpoint's
weights (all but the classifier), the fine-tuning sets are balanced, nested and apart from the
test stream, every shot count is fine-tuned by the trainer and scored on the held-out test split,
and the report has one point per shot count."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from eqlens import models
from eqlens.checkpoint import load_checkpoint, read_checkpoint
from eqlens.errors import CheckpointError
from eqlens.evaluation.classification import evaluate_model
from eqlens.experiments.fewshot import (
    FewShotConfig,
    FewShotData,
    expanded_model,
    finetune_schedule,
    markdown_report,
    run_fewshot,
    transfer_weights,
)
from eqlens.training import trainer

from .conftest import SIZE, TINY


def test_the_three_class_model_starts_from_the_checkpoint_weights_except_the_classifier(old_class_checkpoint):
    saved, card = read_checkpoint(old_class_checkpoint)
    assert card.class_names == ("cdm", "no_sub")
    pretrained, _ = load_checkpoint(old_class_checkpoint)
    model, transfer = expanded_model(pretrained, 3)
    assert set(transfer.skipped) == {"head.weight", "head.bias"} and transfer.missing == []
    assert transfer.skipped["head.weight"] == (tuple(saved["head.weight"].shape), (3, saved["head.weight"].shape[1]))
    state = model.state_dict()
    assert set(transfer.loaded) == set(saved) - set(transfer.skipped)
    for key in transfer.loaded:  # before any training step, e.g. the first conv kernel
        assert torch.equal(state[key], saved[key]), key
    assert model(torch.zeros(2, 1, SIZE, SIZE)).shape == (2, 3)


@pytest.mark.parametrize("name", models.names())
def test_transfer_reinitialises_only_the_classifier_of_every_registered_model(name):
    torch.manual_seed(0)
    two = models.create(name, num_classes=2, image_size=SIZE)
    three = models.create(name, num_classes=3, image_size=SIZE)
    transfer = transfer_weights(two.eval().state_dict(), three)
    assert len(transfer.skipped) == 2 and all(shape[0] == 3 for _, shape in transfer.skipped.values())
    assert len(transfer.loaded) == len(three.state_dict()) - 2


def test_the_few_shot_sets_are_balanced_nested_and_apart_from_the_test_stream():
    data = FewShotData(FewShotConfig(models=("cnn",), shots=(1, 4), data=TINY, val_size=3, test_size=3), SIZE, "cpu")
    small, large = data.shots(1), data.shots(4)
    labels = [int(y) for _, y in large]
    assert Counter(labels) == {0: 4, 1: 4, 2: 4}
    assert list(small.indices) == list(large.indices)[:3]
    assert data.pretrain[0].class_names == ("cdm", "no_sub")
    seeds = {d.simulator_seed for d in (*data.pretrain[:2], data.shot_pool, data.finetune_val)}
    assert len(seeds) == 4 and data.test.simulator_seed not in seeds


def test_the_report_has_one_point_per_shot_count_with_transfer_and_scratch(old_class_checkpoint):
    config = FewShotConfig(models=("cnn",), shots=(3, 1), data=TINY, pretrained={"cnn": old_class_checkpoint},
                           finetune_steps=2, val_size=3, test_size=6, batch_size=3, device="cpu", scratch=True)
    report = run_fewshot(config)
    (result,) = report["models"]
    assert [p["shots"] for p in result["curve"]] == [1, 3] and [p["train_images"] for p in result["curve"]] == [3, 9]
    for point in result["curve"]:
        assert 0 <= point["accuracy"] <= 1 and 0 <= point["new_class_recall"] <= 1
        assert 1 <= point["finetune"]["best_step"] <= 2 and sum(map(sum, point["confusion"])) == 6
        assert 0 <= point["scratch"]["accuracy"] <= 1
    assert set(result["transfer"]["skipped"]) == {"head.weight", "head.bias"}
    assert result["pretrain"]["source"] == "checkpoint" and result["classes"] == ["axion", "cdm", "no_sub"]
    text = markdown_report(report)
    assert "| 1 | " in text and "| 3 | " in text and "`head.weight` (2, 8) -> (3, 8)" in text


def test_a_pretrained_checkpoint_of_other_classes_is_refused(checkpoints):
    config = FewShotConfig(models=("cnn",), shots=(1,), data=TINY, pretrained={"cnn": checkpoints["cnn"]},
                           finetune_steps=1, val_size=3, test_size=3, device="cpu")
    with pytest.raises(CheckpointError, match="classes"):
        run_fewshot(config)


def test_the_fine_tuning_budget_is_ten_validated_epochs_of_equal_steps():
    assert finetune_schedule(300) == (10, 30) and finetune_schedule(305) == (10, 31)
    assert finetune_schedule(2) == (2, 1) and finetune_schedule(1) == (1, 1)


def test_each_shot_count_is_fine_tuned_by_the_trainer_and_scored_on_the_held_out_test_split(old_class_checkpoint,
                                                                                             monkeypatch):
    calls, train = [], trainer.train

    def spy(config, data=None, init_state=None, **kw):
        result = train(config, data=data, init_state=init_state, **kw)
        calls.append((config, data, init_state, result))
        return result

    monkeypatch.setattr(trainer, "train", spy)
    config = FewShotConfig(models=("cnn",), shots=(1, 2), data=TINY, group="D4",
                           pretrained={"cnn": old_class_checkpoint}, finetune_steps=12, val_size=3, test_size=6,
                           batch_size=4, device="cpu", scratch=True)
    (result,) = run_fewshot(config)["models"]
    saved, _ = read_checkpoint(old_class_checkpoint)
    assert len(calls) == 4  # per shot count: transferred, then scratch
    for i, (point, n) in enumerate(zip(result["curve"], (1, 2), strict=True)):
        for (c, data, _, tuned), scores in zip(calls[2 * i : 2 * i + 2], (point, point["scratch"]), strict=True):
            assert (c.epochs, c.steps_per_epoch, c.seed, c.batch_size) == (10, 2, n, min(4, 3 * n))
            assert c.group == "C4" and c.model_kwargs == {"widths": [4, 8]}  # the checkpoint's, not config.group
            assert len(data.train) == 3 * n and len(data.test) == 6
            assert data.test.simulator_seed not in {data.train.dataset.simulator_seed, data.val.simulator_seed}
            report = evaluate_model(tuned.model, data.test, data.class_names, robustness_size=0, with_roc=False,
                                    with_predictions=False)
            assert scores["accuracy"] == report["accuracy"] and scores["confusion"] == report["confusion"]
        (_, _, init_state, tuned), (_, _, no_state, _) = calls[2 * i : 2 * i + 2]
        assert no_state is None and all(torch.equal(init_state[k], saved[k]) for k in saved)
        assert point["finetune"]["best_step"] == 2 * tuned.best_epoch
        assert point["finetune"]["val_accuracy"] == tuned.val_metrics["accuracy"]


def test_a_pretrained_checkpoint_of_another_model_is_refused(old_class_checkpoint):
    config = FewShotConfig(models=("gcnn",), shots=(1,), data=TINY, pretrained={"gcnn": old_class_checkpoint},
                           finetune_steps=1, val_size=3, test_size=3, device="cpu")
    with pytest.raises(CheckpointError, match="holds a 'cnn' model"):
        run_fewshot(config)
