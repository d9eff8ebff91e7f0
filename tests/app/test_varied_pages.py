"""The pages offer the varied population beside Model I and start on the population a model's card names."""

import shutil

from app import lenses

from .conftest import ROOT, no_exception


def test_every_built_in_population_is_offered():
    assert {"model_i", "model_i_varied", "model_i_tnfw", "model_i_varied_tnfw"} <= set(lenses.SIM_CONFIGS)


def test_misclassified_tests_a_varied_model_on_its_own_population(app_test, checkpoint_dir):
    shutil.copytree(ROOT / "checkpoints" / "model_i_varied_flagship", checkpoint_dir / "model_i_varied_flagship")
    at = app_test("views/misclassified.py", mis_model=f"ckpt:{checkpoint_dir / 'model_i_varied_flagship'}")
    no_exception(at)
    data = at.selectbox(key="mis_data")  # Misclassified's test-data choice
    assert data.value == "model_i_varied" and "model_i" in data.options
