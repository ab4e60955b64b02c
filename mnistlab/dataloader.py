"""MNIST-style data: the splits, the batch sampler, and the loader that gathers batches.

Images are kept as they come, uint8 (N, 784), and converted to floats one batch at a time:
that keeps a full run's memory small and the conversion cheap. A batch is gathered with one
fancy-indexing operation, never a Python loop over samples. The loader can prepare the
coming batches while the model trains on the current one, in a worker process (worker.py)
or a background thread (fast.py).
"""
import functools
import os

import numpy as np

from . import fast
from .checks import check_bool, check_choice, check_count
from .data_home import (DataNotFoundError, fetch_command, find_data_root, holds_dataset,
                        idx_file_names, search_path)
from .idx import IDXError, IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .worker import BatchWorker, can_fork

SPLITS = ("train", "val", "test")
PREPROCESSING = ("center", "scale", "normalize")
VAL_SPLITS = ("last", "random")
WORKERS = ("thread", "process")
DEFAULT_VAL_SIZE = 5000


def find_idx_file(data_root, prefix, kind):
    """Path of the IDX file of `kind` ('images' or 'labels') for `prefix` ('train' or 't10k').

    Raises:
        DataNotFoundError: listing every path looked for, and where the data is or how to get it.
    """
    candidates = [os.path.join(data_root, name) for name in idx_file_names(prefix, kind)]
    for path in candidates:
        if os.path.isfile(path):
            return path
    where = "\n  ".join(candidates)
    reason = ("the folder does not exist" if not os.path.isdir(data_root)
              else "none of these files is there")
    found = [folder for folder in search_path() if holds_dataset(folder)]
    remedy = (f"MNIST is in {found[0]}: set cfg['data_root'] to that folder, or leave data_root "
              "unset to use it" if found else
              f"Point cfg['data_root'] at the folder holding the IDX files, or download MNIST "
              f"into the cache with:  {fetch_command()}")
    raise DataNotFoundError(
        f"MNIST {prefix} {kind} not found in data_root={data_root!r} ({reason}). Looked for:\n"
        f"  {where}\n{remedy}")


@functools.lru_cache(maxsize=4)
def _load_idx_pair(images_path, labels_path, mtimes):
    """Read and cross-check an images file and a labels file; cached so that the 'train' and
    'val' splits share one copy of the training file. `mtimes` keys the cache on the files'
    modification times, so an edited file is read again.

    Returns:
        images: (N, rows * cols) read-only uint8.  labels: (N,) read-only uint8.
        image_shape: (rows, cols).
    """
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise IDXError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                       f"{len(labels)} labels: the two files do not belong together")
    image_shape = images.shape[1:]
    return images.reshape(len(images), -1), labels, image_shape


def load_idx_split(data_root, prefix):
    """Images (N, D) uint8, labels (N,) uint8 and the image shape of 'train' or 't10k' files."""
    images_path = find_idx_file(data_root, prefix, "images")
    labels_path = find_idx_file(data_root, prefix, "labels")
    mtimes = (os.path.getmtime(images_path), os.path.getmtime(labels_path))
    return _load_idx_pair(images_path, labels_path, mtimes)


def preprocess(images, dtype=np.float64, method="center", pixel_means=None, out=None):
    """Turn uint8 pixel rows into model inputs.

    Args:
        images: (B, D) uint8.
        dtype: float dtype of the result.
        method: 'center' (the assignment's): x = pixels / 255 - mean(pixels / 255) per image;
            'scale': x = pixels / 255; 'normalize': x = (pixels / 255 - 0.5) / 0.5, in [-1, 1]
            (torchvision's Normalize((0.5,), (0.5,)) after ToTensor()).
        pixel_means: (B,) mean pixel value of each image, if already known (saves a pass).
        out: (B, D) array of `dtype` to write the result into (a worker process's shared
            buffer); None makes a new one. The values are the same either way.

    Returns:
        (B, D) array of `dtype`: `out` when given.
    """
    dtype = np.dtype(dtype)
    if out is None:
        x = images.astype(dtype)
    else:
        x = out
        np.copyto(x, images, casting="safe")   # the same conversion as astype, in place
    if method == "center":
        if pixel_means is None:
            pixel_means = images.mean(axis=1)
        x -= pixel_means.astype(dtype, copy=False)[:, None]
    x *= dtype.type(1 / 255)
    if method == "normalize":
        x -= dtype.type(0.5)
        x /= dtype.type(0.5)
    return x


class Dataset:
    """One split of an MNIST-layout IDX dataset.

    'train' is the training file's first N - val_size samples (55,000 for MNIST), 'val' its
    last val_size (5,000), 'test' the whole t10k file (10,000). With val_split='random',
    'val' is instead val_size samples drawn at random with `split_seed`, and 'train' the
    others: the same images for every Dataset built with that seed, never shared.

    Args:
        data_root: folder holding the four IDX files, raw or gzipped; None searches
            `data_home.search_path()` (./data, the checkout's data/, the per-user cache).
        mode: 'train', 'val' or 'test'.
        num_classes: labels must lie in [0, num_classes); None reads it from the labels
            (largest label + 1).
        dtype: float dtype of the images returned.
        preprocessing: 'center' (default, per-image mean removed), 'scale' or 'normalize';
            see `preprocess`.
        val_size: how many samples of the training file form 'val'.
        val_split: 'last' (default: the training file's last val_size samples) or 'random'.
        split_seed: seed of the random split (needed for 'random': the 'train' and 'val'
            Datasets must draw the same split).

    `dataset[i]` gives (image (D,), label int); `dataset[indices]` with an integer array
    gives a whole batch at once: (images (B, D), labels (B,)).
    """

    def __init__(self, data_root, mode="train", num_classes=10, dtype=np.float64,
                 preprocessing="center", val_size=DEFAULT_VAL_SIZE, val_split="last",
                 split_seed=None):
        self.mode = check_choice("mode", mode, SPLITS)
        self.val_split = check_choice("val_split", val_split, VAL_SPLITS)
        if val_split == "random" and split_seed is None:
            raise ValueError("val_split='random' needs a split_seed, so that the 'train' and "
                             "'val' Datasets draw the same split")
        self.preprocessing = check_choice("preprocessing", preprocessing, PREPROCESSING)
        self.data_root = find_data_root() if data_root is None else data_root
        self.num_classes = num_classes
        self.dtype = np.dtype(dtype)
        images, labels, self.image_shape = load_idx_split(
            self.data_root, "t10k" if mode == "test" else "train")
        # The split's images are never copied: `_source` is the file's array (or a slice of
        # it, a view), and `_rows`, for a random split, the indices of the split's rows in it.
        self._source, self._rows, labels = self._select_split(images, labels, mode, val_size,
                                                              split_seed)
        self.labels = labels.astype(np.int64)
        if self.num_classes is None:
            self.num_classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        self._check_labels()
        # Each image's mean pixel, computed once so that 'center' costs one pass per batch.
        self._pixel_means = (self._row_means().astype(self.dtype)
                             if preprocessing == "center" else None)

    @property
    def images(self):
        """The split's (N, D) uint8 images: a view of the file's array for the 'last' split
        and 'test', a copy gathered on each access for a random split (the loader itself
        gathers only each batch's rows)."""
        return self._source if self._rows is None else self._source[self._rows]

    @property
    def num_features(self):
        """D, the values of one image row."""
        return self._source.shape[1]

    def _row_means(self, chunk=65536):
        """(N,) float64 mean pixel of every image of the split (rows gathered a chunk at a
        time for a random split; each row's mean is the same computed alone or in a block)."""
        if self._rows is None:
            return self._source.mean(axis=1)
        return np.concatenate([self._source[self._rows[start:start + chunk]].mean(axis=1)
                               for start in range(0, len(self._rows), chunk)] or
                              [np.zeros(0)])

    def _select_split(self, images, labels, mode, val_size, split_seed):
        """(source array, row indices in it or None, labels) of the split `mode`."""
        if mode == "test":
            return images, None, labels
        if not 0 < val_size < len(images):
            raise ValueError(f"val_size={val_size} but the training file of {self.data_root!r} "
                             f"has {len(images)} samples; val_size must be in [1, {len(images) - 1}]")
        if self.val_split == "last":
            first_val = len(images) - val_size
            split = slice(None, first_val) if mode == "train" else slice(first_val, None)
            return images[split], None, labels[split]
        order = np.random.default_rng(split_seed).permutation(len(images))
        chosen = np.sort(order[:val_size] if mode == "val" else order[val_size:])
        return images, chosen, labels[chosen]

    def _check_labels(self):
        if len(self.labels) and self.labels.max() >= self.num_classes:
            path = find_idx_file(self.data_root, "t10k" if self.mode == "test" else "train",
                                 "labels")
            raise IDXError(f"{path}: the {self.mode} labels go up to {self.labels.max()}, "
                           f"outside [0, {self.num_classes}): set num_classes to at least "
                           f"{self.labels.max() + 1}")

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        if np.ndim(idx) == 0:
            image, label = self[np.array([idx])]
            return image[0], int(label[0])
        return self.gather(idx)

    def gather(self, indices, out=None):
        """(images (B, D), labels (B,)) of the samples at the integer array `indices`, as
        `dataset[indices]` gives them; with `out`, a (B, D) array of the Dataset's dtype, the
        images are written into it (a worker process's shared buffer, worker.py)."""
        means = None if self._pixel_means is None else self._pixel_means[indices]
        rows = indices if self._rows is None else self._rows[indices]
        return (preprocess(self._source[rows], self.dtype, self.preprocessing, means, out),
                self.labels[indices])

    def __repr__(self):
        return (f"Dataset(mode={self.mode!r}, samples={len(self)}, "
                f"image_shape={self.image_shape}, data_root={self.data_root!r})")


class IterationBatchSampler:
    """Splits a dataset's indices into batches, anew every epoch.

    Every index appears exactly once per epoch; when `batch_size` does not divide the
    dataset, the last batch is smaller, or left out with `drop_last` (so that every batch
    has batch_size samples, as BatchNorm with tiny batches may want).

    Args:
        dataset: anything with `len()`.
        max_epoch: the assignment's argument, kept for its signature; the sampler serves any
            number of epochs, one `prepare_epoch_indices()` each.
        batch_size: samples per batch, >= 1.
        shuffle: draw a new permutation every epoch.
        rng: numpy Generator used for shuffling (a fresh one if None).
        drop_last: leave out the last batch when it is smaller than batch_size.
    """

    def __init__(self, dataset, max_epoch, batch_size=2, shuffle=True, rng=None,
                 drop_last=False):
        self.dataset = dataset
        self.batch_size = check_count("batch_size", batch_size, 1)
        self.shuffle = shuffle
        self.rng = np.random.default_rng(rng)
        self.drop_last = check_bool("drop_last", drop_last)
        self.batch_indices = []

    def prepare_epoch_indices(self):
        """Build this epoch's list of index batches: (batch_size,) arrays, the last possibly
        shorter (unless drop_last)."""
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        self.batch_indices = [order[start:start + self.batch_size]
                              for start in range(0, n, self.batch_size)]
        if self.drop_last and n % self.batch_size:
            self.batch_indices.pop()

    def __iter__(self):
        return iter(self.batch_indices)

    def __len__(self):
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return -(-len(self.dataset) // self.batch_size)


class Dataloader:
    """Yields (images (B, D), labels (B,)) batches, preparing new indices at every epoch start.

    Args:
        dataset: gives a whole batch for an array of indices, `dataset[indices]`, each row
            depending on its own index only (as Dataset's per-image preprocessing does).
        sampler: an IterationBatchSampler (or anything with prepare_epoch_indices, iteration
            over index arrays and len).
        prefetch: 0 prepares each batch when it is asked for. n > 0 has a background worker
            keep up to n chunks of upcoming batches ready. The batches and their order are the
            same either way: prefetching only moves the work to the second core, where it
            overlaps the model's matrix products.
        worker: what prepares the batches ahead: 'thread', a thread of this process
            (fast.prefetched_batches), or 'process', a worker process forked at the first
            pass that hands the batches over in shared memory (worker.py): faster, as it
            shares no lock with the training thread. 'process' runs as 'thread' where the
            platform cannot fork safely (worker.can_fork: Linux only), and for a pass begun
            while another pass of this loader is still going on. The worker keeps the
            dataset as it was at the first pass: `close()` the loader after changing it.
        cache_bytes: for an unshuffled sampler (validation, read every epoch): keep the
            batches of a complete pass, if their images take at most this many bytes, and
            yield them again, read-only, on every later pass whose indices are the same,
            instead of preparing them anew. 0 (the default) keeps nothing.
    """

    def __init__(self, dataset, sampler, prefetch=0, cache_bytes=0, worker="thread"):
        self.dataset = dataset
        self.sampler = sampler
        self.prefetch = check_count("prefetch", prefetch, 0)
        self.cache_bytes = check_count("cache_bytes", cache_bytes, 0)
        self.worker = check_choice("worker", worker, WORKERS)
        self._process = None   # the worker process (worker.BatchWorker), from the first pass
        if self.cache_bytes and getattr(sampler, "shuffle", False):
            raise ValueError("cache_bytes needs an unshuffled sampler: a shuffled loader's "
                             "batches change every epoch, so keeping them saves nothing")
        self._kept = None   # (index batches, their (images, labels)) of the last kept pass

    def __iter__(self):
        self.sampler.prepare_epoch_indices()  # here, so that the shuffle draws stay in this thread
        indices = list(self.sampler)
        if self._kept is not None and same_batches(self._kept[0], indices):
            yield from self._kept[1]
            return
        self._kept = None
        rows, keep, kept = sum(len(batch) for batch in indices), bool(self.cache_bytes), []
        for images, labels in self._prepared(indices):
            if keep and not kept:   # the first batch tells how many bytes the pass takes
                keep = images.nbytes / max(1, len(images)) * rows <= self.cache_bytes
            if keep:
                images.flags.writeable = labels.flags.writeable = False   # yielded again
                kept.append((images, labels))
            yield images, labels
        if keep:   # a complete pass
            self._kept = (indices, kept)

    def _prepared(self, indices):
        """The (images, labels) of every index array in `indices`, in order."""
        if not self.prefetch:
            return (self.dataset[batch] for batch in indices)
        if self.worker == "process" and can_fork() and indices and len(indices[0]):
            # One sample tells the shape and dtype of the images, and so how many batches
            # make a chunk of about CHUNK_BYTES.
            sample, _ = self.dataset[indices[0][:1]]
            per_chunk = fast.batches_per_chunk(sample.nbytes * len(indices[0]))
            process = self._worker_process(sample, per_chunk * len(indices[0]))
            if process is not None:
                # As with the thread, the first chunk is one batch, so that training starts at once.
                chunks = [indices[:1]] + [indices[start:start + per_chunk]
                                          for start in range(1, len(indices), per_chunk)]
                return process.batches(chunks, self.prefetch)
        return fast.prefetched_batches(self.dataset, indices, self.prefetch)

    def _worker_process(self, sample, chunk_samples):
        """The loader's worker process, forked anew unless it has one that fits chunks of
        `chunk_samples` images like `sample` (1, ...) with enough buffers free (the chunks
        asked for ahead, the one trained on and the one before); None while it serves
        another pass."""
        if self._process is not None and self._process.busy:
            return None
        if self._process is None or not self._process.fits(
                self.dataset, sample.shape[1:], sample.dtype, chunk_samples,
                free_buffers=self.prefetch + 2):
            self.close()
            self._process = BatchWorker(self.dataset, sample.shape[1:], sample.dtype,
                                        chunk_samples, buffers=self.prefetch + 3)
        return self._process

    def close(self):
        """Stop the worker process, if one was started (a later pass forks a new one)."""
        if self._process is not None:
            self._process.close()
            self._process = None

    def __len__(self):
        return len(self.sampler)

    def __repr__(self):
        return (f"Dataloader({self.dataset!r}, batch_size={self.sampler.batch_size}, "
                f"shuffle={self.sampler.shuffle}, batches={len(self)}, prefetch={self.prefetch}, "
                f"worker={self.worker!r})")


def same_batches(first, second):
    """Whether two lists of index arrays hold the same batches in the same order."""
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


def build_dataloader(data_root, max_epoch, batch_size, shuffle=False, mode="train", rng=None,
                     prefetch=0, drop_last=False, cache_bytes=0, worker="thread",
                     **dataset_options):
    """A Dataloader over split `mode` of the data in `data_root`.

    `dataset_options` go to `Dataset` (num_classes, dtype, preprocessing, val_size,
    val_split, split_seed); `rng` drives the shuffling; `prefetch` chunks of batches are
    prepared ahead by a `worker`, 'thread' or 'process'; `drop_last` leaves out a last,
    smaller batch; an unshuffled loader keeps its prepared batches up to `cache_bytes` of
    images (see Dataloader).
    """
    dataset = Dataset(data_root, mode, **dataset_options)
    sampler = IterationBatchSampler(dataset, max_epoch, batch_size, shuffle, rng=rng,
                                    drop_last=drop_last)
    return Dataloader(dataset, sampler, prefetch, cache_bytes, worker)
