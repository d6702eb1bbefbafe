"""The one on-disk format, the digits source and the datamodule."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.data.datamodule import ImageDataModule, to_uint8, to_unit_range
from genlab.data.sources.digits import DigitsSource
from genlab.data.store import Split, read_meta, read_split, write_dataset
from genlab.errors import DatasetError


def test_digits_format_and_fixed_split(digits_dir):
    train, test = read_split(digits_dir, "train"), read_split(digits_dir, "test")
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (1, 32, 32)
    assert len(train.labels) + len(test.labels) == 1797
    assert set(np.unique(test.labels)) == set(range(10))
    assert train.images.max() == 255 and train.images.min() == 0
    again = DigitsSource(image_size=32, test_fraction=0.2, seed=0).load()
    assert np.array_equal(again["test"].images, test.images)
    other_seed = DigitsSource(image_size=32, test_fraction=0.2, seed=1).load()
    assert not np.array_equal(other_seed["test"].labels, test.labels)
    meta = read_meta(digits_dir)
    assert meta["counts"] == {"train": len(train.labels), "test": len(test.labels)}
    assert meta["channels"] == 1 and meta["image_size"] == 32 and "licence" in meta


def test_unit_range_round_trip():
    import torch

    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    scaled = to_unit_range(images)
    assert scaled.min() >= -1 and scaled.max() <= 1
    assert torch.equal(to_uint8(scaled), images)


def test_write_is_all_or_nothing(tmp_path):
    good = Split(np.zeros((2, 1, 8, 8), np.uint8), np.zeros(2, np.int64))
    with pytest.raises(DatasetError, match="missing splits"):
        write_dataset(tmp_path / "d", {"train": good}, {})
    assert not (tmp_path / "d").exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_arrays_are_refused():
    with pytest.raises(DatasetError, match="uint8"):
        Split(np.zeros((2, 1, 8, 8), np.float32), np.zeros(2, np.int64))
    with pytest.raises(DatasetError, match="labels shape"):
        Split(np.zeros((2, 1, 8, 8), np.uint8), np.zeros(3, np.int64))


def test_missing_and_corrupt_files_are_reported(tmp_path, digits_dir):
    with pytest.raises(DatasetError, match="Run the fetch stage"):
        read_split(tmp_path, "train")
    corrupt = tmp_path / "train.npz"
    corrupt.write_bytes((digits_dir / "train.npz").read_bytes()[:1000])
    with pytest.raises(DatasetError, match="corrupt"):
        read_split(tmp_path, "train")


def test_datamodule_checks_config_against_data(digits_dir):
    with pytest.raises(DatasetError, match="image_size=32 but the config asks for 64"):
        ImageDataModule(digits_dir, batch_size=8, image_size=64).setup()
    with pytest.raises(DatasetError, match="larger than the"):
        ImageDataModule(digits_dir, batch_size=100_000).setup()
    module = ImageDataModule(digits_dir, batch_size=16, image_size=32, channels=1)
    module.setup()
    images, labels = next(iter(module.train_dataloader()))
    assert images.shape == (16, 1, 32, 32) and labels.shape == (16,)


def test_resumable_sampler_continues_the_uninterrupted_order():
    from genlab.data.sampling import ResumableShuffleSampler

    batch = 4
    uninterrupted = ResumableShuffleSampler(length=10, batch_size=batch, seed=3)
    stream = [i for _ in range(3) for i in uninterrupted]  # three epochs of 2 batches
    assert len(stream) == 3 * 8 and sorted(stream[:8]) != list(range(8))
    assert stream[:8] != stream[8:16], "each epoch has its own order"
    for start in range(6):
        resumed = ResumableShuffleSampler(length=10, batch_size=batch, seed=3)
        resumed.start_at(start)
        continued = [i for _ in range(3) for i in resumed]
        assert continued[: len(stream) - start * batch] == stream[start * batch :], start
    other_seed = [i for i in ResumableShuffleSampler(length=10, batch_size=batch, seed=4)]
    assert other_seed != stream[:8]


def test_ddp_ranks_draw_distinct_latents_and_one_process_is_untouched():
    from types import SimpleNamespace

    import torch

    from genlab.training.reproducibility import DistinctRandomnessPerRank

    def latents_after_start(world_size: int, rank: int) -> torch.Tensor:
        torch.manual_seed(0)
        trainer = SimpleNamespace(world_size=world_size, global_rank=rank)
        DistinctRandomnessPerRank().on_train_start(trainer, None)
        return torch.randn(4, 8)

    assert not torch.equal(latents_after_start(2, 0), latents_after_start(2, 1))
    assert torch.equal(latents_after_start(2, 1), latents_after_start(2, 1)), "reproducible"
    torch.manual_seed(0)
    untouched = torch.randn(4, 8)
    assert torch.equal(latents_after_start(1, 0), untouched), "single process unchanged"


def test_rotation_task_labels_each_quarter_turn():
    import numpy as np

    from genlab.data.store import Split
    from genlab.evaluation.self_supervised import rotation_task

    images = np.arange(2 * 1 * 3 * 3, dtype=np.uint8).reshape(2, 1, 3, 3)
    task = rotation_task(Split(images, np.full(2, -1, dtype=np.int64)))
    assert task.images.shape == (8, 1, 3, 3) and task.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert np.array_equal(task.images[2, 0], np.rot90(images[0, 0]))
    assert np.array_equal(task.images[4, 0], images[0, 0, ::-1, ::-1])
