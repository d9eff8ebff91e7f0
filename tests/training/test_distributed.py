"""Promise of distributed training: two gloo processes on the CPU end with equal models, and only
rank 0 writes checkpoints."""

import os
import socket

import torch
import torch.multiprocessing as mp

from eqlens import checkpoint as ck
from eqlens.core.run_config import TrainConfig
from eqlens.training import train

from .conftest import TINY_CNN, blob_splits


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, report_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    writes = []
    for name in ("write_checkpoint", "write_last"):
        original = getattr(ck, name)

        def logged(*args, _original=original, **kwargs):
            writes.append(_original.__name__)
            return _original(*args, **kwargs)

        setattr(ck, name, logged)
    config = TrainConfig(model="cnn", data="blobs", out=out, epochs=1, batch_size=4, lr=3e-3, device="cpu",
                         robustness_size=0, model_kwargs=TINY_CNN)
    result = train(config, data=blob_splits())
    torch.save({"weights": ck.eval_state_dict(result.model), "writes": writes,
                "test_n": result.test_metrics["n"]}, os.path.join(report_dir, f"rank{rank}.pt"))


def test_two_gloo_ranks_agree_on_the_weights_and_only_rank_zero_writes(tmp_path):
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["writes"] and not r1["writes"]
    assert r0["test_n"] == r1["test_n"] == 16  # each rank predicted half, both see every test image
    for key, value in r0["weights"].items():
        assert torch.equal(value, r1["weights"][key]), key
    saved, card = ck.read_checkpoint(out)
    assert card.training["world_size"] == 2
    for key, value in r0["weights"].items():
        assert torch.equal(value, saved[key]), key
