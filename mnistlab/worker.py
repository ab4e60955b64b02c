"""Batches prepared in a worker process and handed over in shared memory, the fastest way the
Dataloader has to prepare them ahead (`Dataloader(prefetch=n, worker="process")`; the
Solver's training loader by default).

Why a process, when a thread of the training process could do the same work on the other
core: the two threads would share Python's global interpreter lock. The training thread
hands the lock over at every NumPy call of its step, and the preparing thread takes it at
the end of each of its own operations, so the training thread keeps waiting for it. On a
2-core machine, a Solver's softmax epoch (float64, batch 100, validation included) took
1.56x the time of its two matrix products with this worker, and 1.82x with the thread
(bench/bench_floor.py, 5 rounds; README, "Against the arithmetic floor").

How it works:
- The worker is forked from the training process at the loader's first pass, so it starts
  with the dataset as it is then, sharing its memory (copy-on-write; it only reads it). It
  serves every later pass too, until the loader is closed (Solver.train closes it when it
  returns), garbage-collected or the program ends: close a loader whose dataset you change
  after its first pass, and its next pass forks a new worker.
- The two processes share a ring of buffers, each holding one chunk of consecutive
  batches (an anonymous shared memory map made before the fork). The training process asks
  for a chunk by sending its index arrays and a free buffer through a pipe; the worker
  writes the images into that buffer (`dataset.gather(indices, out)` when the dataset
  offers it, as Dataset does, else `dataset[indices]` copied in) and sends the labels back.
  The batches handed out are views of the buffer.
- A buffer is given out again only once no array viewing it is alive, so a batch stays
  valid as long as anyone keeps it (`list(loader)` works). When every buffer is still held,
  the worker sends that chunk's images through the pipe instead: slower, never wrong. A
  pass that starts with too few buffers free (batches of earlier passes kept) gets a new
  worker with a new ring; the kept batches keep the old ring alive.
- Linux only (`can_fork()`): there a forked process that runs NumPy on arrays is safe (fork
  was Python's own default there until 3.14). On macOS, Python has not forked by default
  since 3.8, as system libraries may start threads that a fork breaks, and Windows has no
  fork: there the Dataloader prepares the batches in a thread instead.
"""
import collections
import contextlib
import mmap
import os
import pickle
import signal
import sys
import time
import warnings
import weakref
from multiprocessing import Pipe

import numpy as np

from .fast import split_chunk


_running = weakref.WeakSet()   # the workers this process started and has not stopped


def can_fork():
    """Whether this platform runs the worker process (Linux), or falls back to a thread."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class WorkerError(RuntimeError):
    """The worker process stopped without answering (killed, or out of memory)."""


class BatchWorker:
    """A forked process that prepares chunks of batches into a ring of shared buffers.

    Args:
        dataset: gives `(images, labels)` for an integer index array, `dataset[indices]`,
            images of shape (B, *sample_shape) and dtype `dtype`.
        sample_shape, dtype: the shape and dtype of one sample's images row.
        chunk_samples: how many samples one buffer holds.
        buffers: how many buffers the ring holds: the chunks asked for ahead, plus the chunk
            being trained on, the one before it (a model keeps its last input), and a spare
            for a batch kept longer (the Dataloader gives depth + 3).
    """

    def __init__(self, dataset, sample_shape, dtype, chunk_samples, buffers):
        self.dataset = dataset
        self.sample_shape, self.dtype = tuple(sample_shape), np.dtype(dtype)
        self.chunk_samples = chunk_samples
        self.sample_bytes = int(np.prod(self.sample_shape)) * self.dtype.itemsize
        buffer_bytes = chunk_samples * self.sample_bytes
        ring = mmap.mmap(-1, max(1, buffer_bytes * buffers))   # shared with the forked worker
        self.buffers = [np.frombuffer(ring, np.uint8, buffer_bytes, k * buffer_bytes)
                        for k in range(buffers)]
        self._unviewed = _references(self.buffers[0])   # a buffer's count while no view is alive
        self.busy = False   # a pass is being served
        self.conn, worker_end = Pipe()
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a process with threads (Jupyter's, BLAS's) may
            # deadlock a child that takes a lock another thread held. The worker takes none:
            # it runs NumPy on arrays and talks through its pipe.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.pid = os.fork()
        if self.pid == 0:   # the worker
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the trainer's to handle
                for other in (self, *_running):   # the ends of the training process's pipes
                    other.conn.close()
                self._serve(worker_end)
            finally:
                os._exit(0)
        worker_end.close()
        self._finalizer = weakref.finalize(self, _stop, self.conn, self.pid)
        _running.add(self)

    # ---- the worker's side ----

    def _serve(self, conn):
        """Answer each request (index arrays, buffer number or None) until told to stop."""
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):   # the training process closed the loader or ended
                return
            if request is None:
                return
            chunk, buffer = request
            try:
                conn.send(self._prepare(np.concatenate(chunk), buffer))
            except Exception as exc:   # raised in the training process, at this chunk
                conn.send(("error", _picklable(exc), None))

    def _prepare(self, indices, buffer):
        """('buffer', count, labels) with the images written into buffer `buffer`, or
        ('images', images, labels) when no buffer was free or the images do not fit one."""
        out = None if buffer is None else self._view(buffer, len(indices))
        gather = getattr(self.dataset, "gather", None)
        if out is not None and gather is not None:
            _, labels = gather(indices, out=out)
            return "buffer", len(indices), labels
        images, labels = self.dataset[indices]
        if out is None or images.shape != out.shape or images.dtype != out.dtype:
            return "images", images, labels
        np.copyto(out, images)
        return "buffer", len(indices), labels

    def _view(self, buffer, count):
        """The first `count` samples' images of buffer `buffer`, (count, *sample_shape)."""
        if count > self.chunk_samples:
            return None
        size = count * self.sample_bytes
        return self.buffers[buffer][:size].view(self.dtype).reshape(count, *self.sample_shape)

    # ---- the training process's side ----

    def fits(self, dataset, sample_shape, dtype, chunk_samples, free_buffers):
        """Whether this worker, once not busy, can serve a pass of `dataset` with chunks of
        that size, with at least `free_buffers` buffers free."""
        return (self.alive() and dataset is self.dataset
                and (tuple(sample_shape), np.dtype(dtype)) == (self.sample_shape, self.dtype)
                and chunk_samples <= self.chunk_samples
                and len(self._free_buffers(busy=())) >= free_buffers)

    def alive(self):
        """Whether the worker process runs (it was not stopped, nor found lost)."""
        return self._finalizer.alive

    def batches(self, chunks, depth):
        """The (images, labels) of every batch of `chunks` (lists of index arrays), in
        order, with up to `depth` chunks asked for ahead."""
        self.busy = True
        asked = collections.deque()   # (chunk, buffer) sent and not yet answered, in order
        upcoming = iter(chunks)
        try:
            for chunk in _take(upcoming, depth):
                self._ask(chunk, asked)
            while asked:
                chunk, buffer = asked.popleft()
                images, labels = self._answer(buffer)
                for chunk_ahead in _take(upcoming, 1):   # before training on this one
                    self._ask(chunk_ahead, asked)
                yield from split_chunk(images, labels, chunk)
        finally:
            self._settle(asked)
            self.busy = False

    def _ask(self, chunk, asked):
        """Send the worker a chunk to prepare, with a free buffer for it or None."""
        buffer = self._free_buffer(busy={buffer for _, buffer in asked})
        with self._talking():
            self.conn.send((chunk, buffer))
        asked.append((chunk, buffer))

    def _free_buffer(self, busy):
        """A buffer that no request uses and no array views, or None."""
        free = self._free_buffers(busy)
        return free[0] if free else None

    def _free_buffers(self, busy):
        """The buffers that no request in `busy` uses and no array views."""
        return [number for number in range(len(self.buffers))
                if number not in busy and _references(self.buffers[number]) <= self._unviewed]

    def _answer(self, buffer):
        """The (images, labels) of the oldest request; its error raised here."""
        with self._talking():
            kind, images, labels = self.conn.recv()
        if kind == "error":
            raise images
        if kind == "buffer":
            return self._view(buffer, images), labels
        return images, labels

    @contextlib.contextmanager
    def _talking(self):
        """Around a message through the pipe: a worker gone raises WorkerError; one cut off
        midway (Ctrl-C) leaves the pipe unreadable, so the worker is stopped."""
        try:
            yield
        except (EOFError, OSError):
            self.close()
            raise WorkerError(f"the loader's worker process ({self.pid}) stopped without "
                              "answering (killed, or out of memory?); the next pass starts a "
                              "new one") from None
        except BaseException:
            self.close()
            raise

    def _settle(self, asked):
        """Read the answers of a pass stopped early, so that the next pass starts clean."""
        while asked and self.alive():
            asked.popleft()
            with contextlib.suppress(WorkerError):
                with self._talking():
                    self.conn.recv()

    def close(self):
        """Stop the worker process and wait for it (also done when the worker is collected)."""
        self._finalizer()


def _take(iterator, count):
    """The next `count` items of `iterator` (fewer at its end)."""
    return [item for _, item in zip(range(count), iterator)]


def _references(array):
    """How many references `array` has: a buffer's count grows with every view of it alive."""
    return sys.getrefcount(array)


def _picklable(exc):
    """`exc`, or a RuntimeError with its text if it cannot cross the pipe."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _stop(conn, pid, patience=5.0):
    """Tell the worker to end, and wait for it: `patience` seconds, then it is killed."""
    with contextlib.suppress(OSError):   # a worker that stopped already closed its end
        conn.send(None)
    conn.close()
    deadline = time.monotonic() + patience
    with contextlib.suppress(ChildProcessError):   # already waited for
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.001)
