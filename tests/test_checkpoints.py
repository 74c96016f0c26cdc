"""Checkpoints are read with torch.load(weights_only=True): the trainer's state round-trips, a pickled object is refused."""
import os
import pickle

import pytest
import torch

from gan.config import GanConfig
from gan.trainer import GanTrainer
from study.checkpoints import CHECKPOINT_FILE, CheckpointRefused, read_trainer_state, write_checkpoint

IMAGES = torch.rand(64, 1, 28, 28)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is fastest, and does not fight the other tests' processes for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_same(a, b, where="state"):
    """Equal structure and values, tensors bitwise."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


MLP = GanConfig(arch="mlp", g_width=16, d_width=16, g_depth=1, d_depth=1, z_dim=8, batch_size=16)  # Adam, dropout RNG


def tensors(state):
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, (dict, list, tuple)):
        for value in state.values() if isinstance(state, dict) else state:
            yield from tensors(value)


@pytest.mark.parametrize("written_on", ["cpu", "cuda:0"])
@pytest.mark.parametrize("config", [
    MLP,
    GanConfig(arch="dcgan", g_width=4, d_width=4, z_dim=8, batch_size=16, optimizer="sgd", momentum=0.9),
])
def test_a_trained_trainers_state_round_trips_through_weights_only_loading(tmp_path, config, written_on, monkeypatch):
    trainer = GanTrainer(config, IMAGES)
    trainer.train(3)  # optimizer moments and momentum buffers, advanced RNG states
    trainer.score_history.append((3, 12.5))
    with monkeypatch.context() as patch:
        # torch.save tags each tensor with its device: tagged cuda:0, the file is what a GPU trainer writes
        patch.setattr(torch.serialization, "location_tag", lambda storage: written_on)
        write_checkpoint(tmp_path, trainer)
    state = read_trainer_state(tmp_path)
    # read to the CPU whoever wrote it (torch.load would put a GPU's tensors back on a GPU); the trainer moves them
    assert {tensor.device.type for tensor in tensors(state)} == {"cpu"}
    assert_same(state, trainer.state_dict())
    # and it restores a trainer that continues exactly like the original
    restored = GanTrainer(config, IMAGES)
    restored.load_state_dict(state)
    assert_same(restored.train(2), trainer.train(2))


class RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_checkpoint_carrying_a_pickled_object_is_refused_with_a_clear_error(tmp_path):
    trainer = GanTrainer(GanConfig(g_width=8, d_width=8, g_depth=1, d_depth=1, z_dim=4, batch_size=8), IMAGES)
    state = trainer.state_dict()
    state["config"]["extra"] = RunsCodeWhenUnpickled()
    torch.save(state, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(CheckpointRefused) as info:
        read_trainer_state(tmp_path)
    message = str(info.value)
    assert "posix.system" in message or "os.system" in message, message
    assert str(tmp_path / CHECKPOINT_FILE) in message and "refused" in message and "\n" not in message
    # the same file would have run the code with weights_only=False: the refusal is what protects the node
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_trainer_restores_from_its_checkpoint_and_continues_exactly(tmp_path):
    straight = GanTrainer(MLP, IMAGES, "cuda")  # fused Adam, dropout on the GPU
    straight.train(6)
    first_half = GanTrainer(MLP, IMAGES, "cuda")
    first_half.train(3)
    write_checkpoint(tmp_path, first_half)
    resumed = GanTrainer(MLP, IMAGES, "cuda")
    resumed.load_state_dict(read_trainer_state(tmp_path))
    for optimizer in (resumed.opt_g, resumed.opt_d):
        assert {tensor.device.type for tensor in tensors(optimizer.state_dict()["state"])} == {"cuda"}
    resumed.train(3)
    assert_same([p.cpu() for p in resumed.generator.parameters()], [p.cpu() for p in straight.generator.parameters()])
    # a state mapped to the GPU, generators' states included, restores too
    GanTrainer(MLP, IMAGES, "cuda").load_state_dict(
        torch.load(tmp_path / CHECKPOINT_FILE, map_location="cuda", weights_only=True))
    # GPU dropout has its own stream: not the sampling generator's (seed, offset)
    fresh = GanTrainer(MLP, IMAGES, "cuda").state_dict()
    assert not torch.equal(fresh["dropout_cuda_rng"], fresh["rng"])
