"""The worker process that prepares batches in shared memory (mnistlab/worker.py), through the
Dataloader that uses it. That its batches are the plain loader's is tested beside the
thread's, in test_fast.py."""
import gc
import os
import signal
import threading

import numpy as np
import pytest

from mnistlab import dataloader, fast, worker
from mnistlab.dataloader import Dataloader, IterationBatchSampler
from mnistlab.worker import BatchWorker, WorkerError

pytestmark = pytest.mark.skipif(not worker.can_fork(), reason="the worker process needs Linux")


class IndexRows:
    """Rows of 4 float64 values holding their index; raises for the indices in `broken`."""

    def __init__(self, size=95, broken=(), error=KeyError):
        self.size, self.broken, self.error = size, set(broken), error

    def __len__(self):
        return self.size

    def __getitem__(self, indices):
        bad = self.broken.intersection(np.asarray(indices).tolist())
        if bad:
            raise self.error(f"sample {min(bad)} is broken")
        return np.repeat(np.asarray(indices)[:, None], 4, axis=1).astype(np.float64), indices


def loader_of(dataset, monkeypatch, batch_size=10, prefetch=2, chunk_batches=2):
    """A shuffled loader of `dataset` with a worker process; chunks of `chunk_batches` batches."""
    monkeypatch.setattr(fast, "CHUNK_BYTES", 32 * batch_size * chunk_batches)
    sampler = IterationBatchSampler(dataset, 1, batch_size, shuffle=True,
                                    rng=np.random.default_rng(0))
    return Dataloader(dataset, sampler, prefetch=prefetch, worker="process")


def assert_rows_hold_their_labels(batches):
    for images, labels in batches:
        np.testing.assert_array_equal(images, np.repeat(labels[:, None], 4, axis=1))


def process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"   # not a zombie


def test_a_process_serves_the_passes_and_kept_batches_stay_valid(monkeypatch):
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    # 10 batches: a first chunk of one, then 5 chunks of 2, for a ring of 5 buffers; all kept
    first_pass = list(loader)
    process = loader._process
    in_buffers = [any(np.shares_memory(images, buffer) for buffer in process.buffers)
                  for images, _ in first_pass]
    assert in_buffers == [True] * 9 + [False]   # no buffer left: the last chunk came by pipe
    second_pass = list(loader)
    assert process_exists(loader._process.pid)
    for batches in (first_pass, second_pass):
        assert sorted(np.concatenate([labels for _, labels in batches])) == list(range(95))
        assert_rows_hold_their_labels(batches)
    assert not [thread for thread in threading.enumerate() if thread.name == "batch-prefetch"]
    pid = loader._process.pid
    loader.close()
    assert not process_exists(pid)


def test_a_buffer_is_given_out_again_only_once_no_batch_views_it(monkeypatch):
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    for images, _ in loader:
        pass
    process = loader._process
    # the last batch is a view of one buffer: with every other buffer busy, none is free
    (held,) = [number for number, buffer in enumerate(process.buffers)
               if np.shares_memory(buffer, images)]
    others = set(range(len(process.buffers))) - {held}
    assert process._free_buffer(busy=others) is None
    del images
    assert process._free_buffer(busy=others) == held


def test_a_pass_begun_with_too_few_buffers_free_gets_a_new_worker(monkeypatch):
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    one_batch = next(iter(loader))   # held on: the ring's spare buffer covers it
    list(loader)
    first = loader._process.pid
    kept = list(loader)              # served by the same worker; it holds every buffer after
    assert loader._process.pid == first
    fresh = list(loader)             # so this pass forks a new worker, with a new ring
    assert loader._process.pid != first and not process_exists(first)
    assert not any(np.shares_memory(fresh[0][0], images) for images, _ in kept)
    assert_rows_hold_their_labels([one_batch, *kept, *fresh])


def test_stopping_a_pass_early_leaves_the_next_one_whole(monkeypatch):
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    for step, _ in enumerate(loader):
        if step == 2:
            break
    batches = list(loader)
    assert sorted(np.concatenate([labels for _, labels in batches])) == list(range(95))
    assert_rows_hold_their_labels(batches)


@pytest.mark.parametrize("error", [KeyError, type("Unpicklable", (Exception,), {})])
def test_an_error_in_the_worker_is_raised_at_its_batch_and_the_worker_goes_on(monkeypatch,
                                                                              error):
    dataset = IndexRows(broken={50}, error=error)
    loader = loader_of(dataset, monkeypatch=monkeypatch)
    seen = []
    expected = KeyError if error is KeyError else RuntimeError   # a class made here cannot cross
    with pytest.raises(expected, match="sample 50 is broken"):
        for _, labels in loader:
            seen.extend(labels.tolist())
    assert 50 not in seen and len(seen) < 95
    dataset.broken.clear()   # the worker's copy still has it: close, and a new worker forks
    with pytest.raises(expected, match="sample 50 is broken"):
        list(loader)
    loader.close()
    assert len(np.concatenate([labels for _, labels in loader])) == 95


def test_a_killed_worker_is_reported_and_the_next_pass_starts_a_new_one(monkeypatch):
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    list(loader)
    old = loader._process.pid
    os.kill(old, signal.SIGKILL)
    with pytest.raises(WorkerError, match=r"worker process \(\d+\) stopped without answering"):
        list(loader)
    batches = list(loader)
    assert loader._process.pid != old and len(batches) == 10
    assert_rows_hold_their_labels(batches)


def test_a_pass_interrupted_midway_stops_the_worker_and_the_next_pass_forks_one(monkeypatch):
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    list(loader)
    process = loader._process

    def interrupted():   # Ctrl-C while a message is being read: the pipe cannot be trusted
        raise KeyboardInterrupt
    monkeypatch.setattr(process.conn, "recv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        list(loader)
    assert not process.alive() and not process_exists(process.pid)
    batches = list(loader)
    assert loader._process is not process and len(batches) == 10
    assert_rows_hold_their_labels(batches)


def test_the_worker_ignores_ctrl_c_which_is_the_training_loops_to_handle(monkeypatch):
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    list(loader)
    os.kill(loader._process.pid, signal.SIGINT)
    assert len(list(loader)) == 10


def test_a_collected_loader_stops_its_worker_while_another_loaders_worker_runs(monkeypatch):
    loader, other = (loader_of(IndexRows(), monkeypatch=monkeypatch) for _ in range(2))
    list(loader)
    list(other)    # its worker was forked after the first one
    pid = loader._process.pid
    del loader
    gc.collect()
    assert not process_exists(pid)
    assert process_exists(other._process.pid)


def test_a_pass_begun_during_another_is_prepared_by_a_thread(monkeypatch):
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    first = iter(loader)
    next(first)
    second = list(loader)
    assert sorted(np.concatenate([labels for _, labels in second])) == list(range(95))
    rest = list(first)
    assert len(rest) == 9
    assert_rows_hold_their_labels(second + rest)


def test_without_fork_the_thread_prepares_the_batches(monkeypatch):
    monkeypatch.setattr(dataloader, "can_fork", lambda: False)
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    assert len(list(loader)) == 10
    assert loader._process is None


def test_a_dataset_with_gather_is_prepared_straight_into_the_buffers(tiny_data):
    class GatherOnly(dataloader.Dataset):
        """A Dataset whose whole batches come only from gather(out=...): the worker's way."""
        def __getitem__(self, indices):
            if len(indices) > 1:
                raise AssertionError("the worker called dataset[indices]")
            return super().__getitem__(indices)

    dataset = GatherOnly(tiny_data, "train", val_size=100)
    loader = Dataloader(dataset, IterationBatchSampler(dataset, 1, 50, shuffle=False),
                        prefetch=2, worker="process")
    batches = list(loader)
    assert any(np.shares_memory(batches[-1][0], buffer) for buffer in loader._process.buffers)
    images, labels = dataset.gather(np.arange(len(dataset)))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)


def test_a_new_dataset_gets_a_new_worker(monkeypatch):
    loader = loader_of(IndexRows(), monkeypatch=monkeypatch)
    list(loader)
    old = loader._process.pid
    loader.dataset = loader.sampler.dataset = IndexRows(size=40)
    batches = list(loader)
    assert loader._process.pid != old and not process_exists(old)
    assert sorted(np.concatenate([labels for _, labels in batches])) == list(range(40))


def test_images_that_do_not_fit_a_buffer_come_through_the_pipe():
    class GrowingRows(IndexRows):   # the rows of later samples are wider
        def __getitem__(self, indices):
            width = 4 if min(indices) == 0 else 6
            return np.ones((len(indices), width)), indices

    dataset = GrowingRows(size=40)
    loader = Dataloader(dataset, IterationBatchSampler(dataset, 1, 10, shuffle=False),
                        prefetch=2, worker="process")
    assert [images.shape for images, _ in loader] == [(10, 4), (10, 6), (10, 6), (10, 6)]


def test_a_chunk_larger_than_a_buffer_gets_no_view_of_it():
    process = BatchWorker(IndexRows(), (4,), np.float64, chunk_samples=10, buffers=2)
    try:
        assert process._view(1, 10).shape == (10, 4)
        assert process._view(0, 11) is None   # the worker then sends it through the pipe
    finally:
        process.close()
