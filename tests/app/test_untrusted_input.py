"""The app facing a hostile or careless user: uploads are decoded in a child (a crashing decoder costs
that child, not the server), folder fields reach only the configured data roots, the server listens on
127.0.0.1 by default, and checkpoint uploads keep their promise (a zipped folder loads) and never echo
torch's advice to load with weights_only=False."""

from __future__ import annotations

import functools
import io
import os
import pickle
import zipfile

import pytest

from app import catalog, lenses, settings, state, widgets
from eqlens.errors import CheckpointError, DataError
from tests.data.layouts import write_model_i
from tests.data.test_npy_rebuild import crafted_outer_shape

from .conftest import ROOT, no_exception
from .test_pages import write_tiny_checkpoint


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = (tmp_path / "data").resolve()
    write_model_i(root / "Model_I", per_class=2, size=24)
    monkeypatch.setattr(settings, "DATA_ROOTS", (root,))
    return root


# ------------------------------------------------------------------------------------- server binding


def test_the_server_listens_on_localhost_by_default():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


def test_the_data_roots_are_the_project_data_folder_and_the_environment(monkeypatch, tmp_path):
    import importlib

    monkeypatch.setenv("EQLENS_DATA_ROOTS", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    try:
        roots = importlib.reload(settings).DATA_ROOTS
    finally:
        monkeypatch.delenv("EQLENS_DATA_ROOTS")
        importlib.reload(settings)
    assert roots == ((ROOT / "data").resolve(), (tmp_path / "a").resolve(), (tmp_path / "b").resolve())


# --------------------------------------------------------------------------------------------- folders


def test_a_folder_outside_the_data_roots_is_refused_without_listing_it(data_root):
    for typed in ("/etc", "/usr", "/", f"{data_root}/../..", "../../etc", "Model_I/../../.."):
        with pytest.raises(DataError, match="only inside its data folders") as err:
            lenses.allowed_folder(typed)
        assert "passwd" not in str(err.value) and "bin/" not in str(err.value)


def test_a_folder_inside_a_root_is_found_by_absolute_or_relative_path(data_root):
    assert lenses.allowed_folder(str(data_root / "Model_I")) == data_root / "Model_I"
    assert lenses.allowed_folder("Model_I") == data_root / "Model_I"
    assert lenses.allowed_folder(" Model_I/../Model_I ") == data_root / "Model_I"
    with pytest.raises(DataError, match="no such folder inside the data folders"):
        lenses.allowed_folder("Model_II")


def test_a_symlink_out_of_a_root_is_refused(data_root, tmp_path):
    outside = tmp_path / "outside"
    write_model_i(outside, per_class=1, size=20)
    (data_root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match="only inside its data folders"):
        lenses.allowed_folder("escape")
    (data_root / "Model_I" / "cdm" / "zz_link.npy").symlink_to(next((outside / "cdm").iterdir()))
    dataset = lenses.folder_index("Model_I")
    index = [p.name for p in dataset.files].index("zz_link.npy")
    with pytest.raises(DataError, match="links outside the data folders"):
        lenses.from_folder("Model_I", index)


def test_explore_refuses_a_system_folder_and_stays_usable(app_test, data_root):
    at = app_test()
    at.radio(key="explore_source").set_value("DeepLense folder").run()
    at.text_input(key="explore_folder").input("/etc").run()
    no_exception(at)
    errors = [e.value for e in at.error]
    assert errors and "only inside its data folders" in errors[0] and "passwd" not in errors[0]
    at.text_input(key="explore_folder").input("Model_I").run()
    no_exception(at)
    assert not at.error
    at.radio(key="explore_source").set_value("Simulate").run()
    no_exception(at)


def test_train_refuses_a_system_folder_before_starting_a_job(app_test, data_root):
    at = app_test("views/train.py")
    at.radio(key="train_data_kind").set_value("DeepLense folder").run()
    at.text_input(key="train_folder").input("/usr").run()
    at.button(key="train_start").click().run()
    no_exception(at)
    assert any("Cannot train with these settings" in e.value and "data folders" in e.value for e in at.error)
    assert state.TRAIN_JOB not in at.session_state or at.session_state[state.TRAIN_JOB] is None


def test_a_training_folder_is_resolved_inside_the_roots(data_root):
    assert lenses.training_folder("Model_I") == str(data_root / "Model_I")


# --------------------------------------------------------------------------------------------- uploads


def test_the_crafted_axion_upload_is_refused_and_the_page_stays_usable(app_test):
    at = app_test()
    at.radio(key="explore_source").set_value("Upload").run()
    at.file_uploader(key="explore_image_upload").upload("axion_sim_1.npy", crafted_outer_shape()).run()
    no_exception(at)
    assert any("must carry exactly 200 items" in e.value for e in at.error)
    at.radio(key="explore_source").set_value("Simulate").run()
    no_exception(at)
    assert not at.error


def test_a_decoder_crash_on_an_upload_leaves_other_sessions_answering(app_test, monkeypatch):
    from eqlens.data import sandbox

    crashing = functools.partial(sandbox.decode_untrusted, decoder="tests.data.sandbox_targets:segfault")
    monkeypatch.setattr(sandbox, "decode_untrusted", crashing)
    lenses._decode_upload.clear()
    first, second = app_test(), app_test()
    first.radio(key="explore_source").set_value("Upload").run()
    first.file_uploader(key="explore_image_upload").upload("lens.npy", b"\x93NUMPY whatever").run()
    no_exception(first)
    assert any("crashed on this file (SIGSEGV)" in e.value for e in first.error)
    second.slider(key="explore_angle").set_value(30.0).run()
    no_exception(second)
    assert not second.error
    lenses._decode_upload.clear()


# ----------------------------------------------------------------------------------------- checkpoints


def _zip(folder, prefix: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{prefix}/{path.relative_to(folder)}")
    return buffer.getvalue()


def test_a_zipped_checkpoint_folder_loads_as_the_help_promises(app_test, tmp_path):
    write_tiny_checkpoint(tmp_path, "tiny", "cnn", "binary", ["no_sub", "sub"])
    weights = (tmp_path / "tiny" / "model.safetensors").read_bytes()
    data = _zip(tmp_path / "tiny", "tiny")
    assert widgets.checkpoint_upload(data, "tiny.zip") == weights
    at = app_test()
    at.file_uploader(key="explore_ckpt_upload").upload("tiny.zip", data).run()
    key = catalog.upload_key(weights)
    assert key in at.session_state[state.UPLOADED_CHECKPOINTS]
    at.selectbox(key="explore_model").set_value(key).run()
    no_exception(at)
    assert not any("Cannot load this model" in e.value for e in at.error)


def test_a_zip_without_weights_gets_a_message_that_says_what_to_upload():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    with pytest.raises(CheckpointError, match="without model.safetensors"):
        widgets.checkpoint_upload(buffer.getvalue(), "notes.zip")


class _Payload:
    def __reduce__(self):
        return os.system, ("true",)


def test_a_refused_pickle_never_shows_torchs_weights_only_advice(app_test):
    import torch

    buffer = io.BytesIO()
    torch.save({"w": _Payload()}, buffer)
    for data in (buffer.getvalue(), pickle.dumps(_Payload())):
        at = app_test()
        at.file_uploader(key="explore_ckpt_upload").upload("evil.pt", data).run()
        bad = next(iter(at.session_state[state.UPLOADED_CHECKPOINTS]))
        at.selectbox(key="explore_model").set_value(bad).run()
        no_exception(at)
        shown = " ".join(e.value for e in at.error)
        assert "Cannot load this model" in shown and "not plain tensors" in shown
        assert "weights_only" not in shown and "False" not in shown and "trusted source" not in shown


def test_user_message_strips_torchs_advice_from_any_wording():
    advice = ("uploaded checkpoint: refusing a pickle file that is not plain tensors (weights_only load failed: "
              "Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will likely "
              "succeed, but it can result in arbitrary code execution.)")
    shown = widgets.user_message(CheckpointError(advice))
    assert shown.startswith("uploaded checkpoint: refusing a pickle file that is not plain tensors")
    assert "weights_only" not in shown and "False" not in shown
    assert "weights_only" not in widgets.user_message(ValueError("set weights_only=False"))
    assert widgets.user_message(DataError("plain")) == "plain"



def test_an_oversized_upload_is_cached_as_its_refusal_never_as_its_pixels():
    # A 30 KB PNG of 4096x4096 decodes to 128 MB of float64: the cache kept that for every such
    # upload (refused or not), so a few tiny uploads pinned gigabytes in the server.
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("I;16", (4096, 4096)).save(buffer, "PNG")
    lenses._decode_upload.clear()
    image, refusal = lenses._decode_upload(buffer.getvalue(), "big.png")
    assert image is None and "4096x4096 is too large (at most 2048x2048 pixels)" in refusal
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 7).save(buffer, "PNG")
    image, refusal = lenses._decode_upload(buffer.getvalue(), "ok.png")
    assert refusal is None and image.dtype == "float32" and image.shape == (64, 64)
    lenses._decode_upload.clear()


def test_a_checkpoint_over_the_apps_image_size_is_refused_with_a_message(checkpoint_dir, monkeypatch):
    # A card may ask for 512 px; a 512 px gcnn's orbit and scrubber took 17.5 GB of the server in 140 s.
    write_tiny_checkpoint(checkpoint_dir, "tiny33", "cnn", "binary", ["no_sub", "sub"])
    monkeypatch.setattr(settings, "MAX_MODEL_IMAGE_SIZE", 32)
    with pytest.raises(CheckpointError, match="takes 33 px images; the app runs models up to 32 px"):
        catalog.load(f"ckpt:{checkpoint_dir / 'tiny33'}")
    monkeypatch.setattr(settings, "MAX_MODEL_IMAGE_SIZE", 33)
    assert catalog.load(f"ckpt:{checkpoint_dir / 'tiny33'}").image_size == 33


def test_large_model_inputs_run_fewer_images_per_forward():
    import torch

    from app import compute

    assert compute.batch_for(torch.zeros(1, 1, 81, 81), 12) == 12
    assert compute.batch_for(torch.zeros(1, 1, 256, 256), 12) == 1
    assert compute.batch_for(torch.zeros(1, 1, 33, 33), 4) == 4


def test_a_zipped_bomb_of_zeros_is_refused_before_the_session_keeps_it():
    # 260 KB of zip unzipped to 255 MB of zeros that the session kept as an "uploaded checkpoint".
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("run/model.safetensors", bytes(1 << 20))
    with pytest.raises(CheckpointError, match=r"bomb.zip: run/model.safetensors: corrupt"):
        widgets.checkpoint_upload(buffer.getvalue(), "bomb.zip")
    assert widgets.MAX_UNZIPPED_BYTES <= 64 << 20
