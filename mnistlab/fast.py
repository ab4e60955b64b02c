"""The optimised versions of the hot operations, each beside a plain twin it is proven equal to
(tests/test_fast.py, on random inputs), as the cs231n assignment keeps fast_layers.py beside
layers.py. Read the plain version first; the training path uses these:

| here                   | plain twin                     | what makes it fast          |
|------------------------|--------------------------------|-----------------------------|
| softmax_cross_entropy  | loss.softmax_cross_entropy     | class-major layout          |
| Conv2d                 | layers.Conv2d                  | im2col: one matrix product  |
| MaxPool2d              | layers.MaxPool2d               | contiguous window blocks    |
| BatchNorm2d            | layers.BatchNorm2d             | channel-major rows, buffers |
| ReLU                   | layers.ReLU                    | in place (the CNN only)     |
| prefetched_batches     | Dataloader without prefetch    | a background thread         |

worker.py holds the other way to prepare batches ahead, a worker process (it shares no lock
with the training thread, so it is faster still, where the platform can fork).
"""
import contextlib
import queue
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import layers


# ---- softmax cross-entropy ----------------------------------------------------------------------

def softmax_cross_entropy(logits, labels):
    """loss.softmax_cross_entropy, computed on a class-major copy (C, N) of the logits: every
    reduction over the C classes then runs along long contiguous rows instead of N short ones,
    about twice as fast for C = 10.

    Returns:
        loss: float, the mean cross-entropy.  probs: (N, C) softmax probabilities.
    """
    shifted = logits.T.copy()
    shifted -= shifted.max(axis=0)
    label_logits = shifted[labels, np.arange(len(labels))]
    exp_shifted = np.exp(shifted, out=shifted)
    sum_exp = exp_shifted.sum(axis=0)
    # -log p_label = log(sum exp(shifted)) - shifted_label; both parts are >= 0 (the sum holds
    # an exp(0) = 1, and shifted <= 0), so adding each part up on its own cancels nothing
    loss = (np.log(sum_exp).sum() - label_logits.sum()) / len(labels)
    exp_shifted /= sum_exp
    return float(loss), exp_shifted.T


# ---- convolution as one matrix product ----------------------------------------------------------

def im2col(x, kernel_size, stride):
    """Every kernel-sized window of x, laid out so that a convolution is one matrix product.

    Args:
        x: (N, C, H, W) array (already zero-padded if the convolution pads).
        kernel_size: (kh, kw).  stride: (sh, sw).

    Returns:
        cols: (C, kh, kw, N, Ho, Wo) array with cols[c, u, v, n, i, j] = x[n, c, i*sh+u, j*sw+v],
        Ho = (H - kh) // sh + 1, Wo = (W - kw) // sw + 1. `sliding_window_view` gives all
        windows as a strided view without copying; the one copy is the transpose into this
        layout, whose reshape (C*kh*kw, N*Ho*Wo) is the matrix the convolution multiplies.
    """
    (sh, sw) = stride
    windows = sliding_window_view(x, kernel_size, axis=(2, 3))[:, :, ::sh, ::sw]
    return np.ascontiguousarray(windows.transpose(1, 4, 5, 0, 2, 3))


def col2im(cols, x_shape, stride):
    """The adjoint of `im2col`: add every window entry back onto the pixel it was taken from.

    Args:
        cols: (C, kh, kw, N, Ho, Wo) array, e.g. dL/dcols.
        x_shape: (N, C, H, W), the shape of im2col's input.
        stride: (sh, sw).

    Returns:
        (N, C, H, W) array dx with dx[n, c, i*sh+u, j*sw+v] += cols[c, u, v, n, i, j] summed over
        every window (i, j) covering that pixel.

    Overlapping windows send several entries to one pixel, so this loops over the kh*kw kernel
    offsets (u, v): each step is one vectorised strided add of a whole (C, N, Ho, Wo) block.
    """
    channels, kh, kw, _, out_h, out_w = cols.shape
    n, _, height, width = x_shape
    sh, sw = stride
    dx = np.zeros((channels, n, height, width), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            dx[:, :, u:u + sh * out_h:sh, v:v + sw * out_w:sw] += cols[:, u, v]
    return dx.transpose(1, 0, 2, 3)


class Conv2d(layers.Conv2d):
    """layers.Conv2d computed as one BLAS matrix product on the im2col matrix:

        cols = im2col(xp)  (C*kh*kw, N*Ho*Wo),   out = W.reshape(F, C*kh*kw) @ cols + b.

    Backward, with dout reshaped to (F, N*Ho*Wo):
        dL/dW = dout @ cols^T,   dL/db = sum over (n, i, j) of dout,
        dL/dx = col2im(W^T @ dout) with the padding cut off.

    Between the two passes the layer keeps the padded input xp, not cols: cols holds every
    input value kh*kw times (9 times for 3x3), which in a layer that widens less than that
    (16 to 32 channels in the zoo's CNN) would be several times its largest activation.
    Backward builds cols again from xp, for the moment it needs them.
    """

    def forward(self, x):
        """(N, C, H, W) -> (N, F, Ho, Wo)."""
        self.xp = self._padded(x)
        cols = im2col(self.xp, self.kernel_size, self.stride)
        _, _, _, n, out_h, out_w = cols.shape
        out = self.W.reshape(self.out_channels, -1) @ cols.reshape(self.W[0].size, -1)
        out += self.b.reshape(-1, 1)
        # (F, N*Ho*Wo) -> (N, F, Ho, Wo) as a view: no copy, the next layer reads it strided.
        return out.reshape(self.out_channels, n, out_h, out_w).transpose(1, 0, 2, 3)

    def backward(self, dout):
        """dout (N, F, Ho, Wo) -> dx (N, C, H, W); sets grad_W (F, C, kh, kw) and grad_b."""
        dout_matrix = dout.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)
        cols = im2col(self.xp, self.kernel_size, self.stride)
        self.grad_W = (dout_matrix @ cols.reshape(self.W[0].size, -1).T).reshape(self.W.shape)
        self.grad_b = dout_matrix.sum(axis=1).reshape(self.b.shape)
        if not self.needs_input_grad:
            return None
        # dL/dcols = W^T dout, written over cols, which dL/dW was the last to need
        dcols = np.matmul(self.W.reshape(self.out_channels, -1).T, dout_matrix,
                          out=cols.reshape(self.W[0].size, -1))
        dx = col2im(dcols.reshape(cols.shape), self.xp.shape, self.stride)
        return self._unpadded(dx)


# ---- max pooling on contiguous window blocks ----------------------------------------------------

class MaxPool2d(layers.MaxPool2d):
    """layers.MaxPool2d, with each window entry gathered into a contiguous block.

    The (u, v) entries of all windows form the (N, C, Ho, Wo) block x[:, :, u::sh, v::sw]
    (cut to Ho x Wo). When the windows tile the input (stride == kernel_size, sizes divisible)
    these blocks are plain views of the reshape (N, C, Ho, kh, Wo, kw) of x; otherwise strided
    slices. Forward stacks the kh*kw blocks and takes their maximum. Backward loops over the
    kh*kw offsets in order, each step one vectorised operation on a whole block: dout goes to
    the entries equal to the maximum in windows not yet served (so a tie sends it to the first
    only), written into dx when the windows tile it, added where they may overlap. (Reducing
    the reshape with `.max(axis=(3, 5))` gives the same forward, but NumPy reduces such short
    strided axes over ten times slower.)
    """

    def _window_entries(self, x, out_shape):
        """[x block of offset (u, v), each (N, C, Ho, Wo)] for the offsets in row-major order."""
        (kh, kw), (sh, sw), (n, c, out_h, out_w) = self.kernel_size, self.stride, out_shape
        if self.tiles:
            tiles = x.reshape(n, c, out_h, kh, out_w, kw)
            return [tiles[:, :, :, u, :, v] for u in range(kh) for v in range(kw)]
        return [x[:, :, u:u + sh * out_h:sh, v:v + sw * out_w:sw]
                for u in range(kh) for v in range(kw)]

    def forward(self, x):
        """(N, C, H, W) -> (N, C, Ho, Wo)."""
        out_shape = self._output_shape(x)
        (kh, kw), (height, width) = self.kernel_size, x.shape[2:]
        self.tiles = self.stride == self.kernel_size and height % kh == 0 and width % kw == 0
        # Entry k of every window, gathered into one contiguous (kh*kw, N, C, Ho, Wo) array:
        # elementwise work on contiguous blocks is several times faster than on strided ones.
        self.windows = np.stack(self._window_entries(x, out_shape))
        self.x_shape = x.shape
        return self.windows.max(axis=0)

    def backward(self, dout):
        """dout (N, C, Ho, Wo) -> dx (N, C, H, W)."""
        out = self.windows.max(axis=0)
        unclaimed = np.ones(out.shape, dtype=bool)   # windows whose maximum is still unrouted
        # Tiling windows cover every pixel exactly once, so their blocks are written straight
        # into an uninitialised dx; overlapping or partial cover needs zeros and a sum.
        dx = (np.empty if self.tiles else np.zeros)(self.x_shape, dtype=dout.dtype)
        for entry, dx_entry in zip(self.windows, self._window_entries(dx, dout.shape)):
            first_max = (entry == out) & unclaimed
            unclaimed &= ~first_max
            if self.tiles:
                np.multiply(dout, first_max, out=dx_entry)
            else:
                dx_entry += dout * first_max
        return dx


def _is_channel_major(x):
    """Whether (N, C, H, W) x is a view of a contiguous (C, N, H, W) array, as the fast
    Conv2d's output is."""
    return x.ndim == 4 and x.transpose(1, 0, 2, 3).flags.c_contiguous


# ---- batch normalisation and ReLU on channel-major rows, in place -------------------------

class BatchNorm2d(layers.BatchNorm2d):
    """layers.BatchNorm2d computed on the (C, N*H*W) rows of channel-major memory (the fast
    Conv2d's output is such a view, so no copy is made): every statistic is a reduction along
    one contiguous row, and the elementwise steps reuse two buffers instead of allocating
    four. The same operations in the same order as the plain layer: equal bitwise. (NumPy
    sums an (N, C, H, W) array over axes (0, 2, 3) in its memory order; on an input or a
    dout that is not channel-major, the plain layer's code runs, so that the sums still run
    in the plain layer's order.)
    """

    def forward(self, x):
        """x (N, C, H, W) -> out of the same shape, channel-major in memory."""
        layers._check_input(x, self.input_ndim, self.num_features, type(self).__name__)
        n, c, height, width = x.shape
        self.rows_layout = _is_channel_major(x) and x.size // c >= 2
        if not self.rows_layout:  # the plain layer's reductions, in the plain layer's order
            return super().forward(x)
        rows = x.transpose(1, 0, 2, 3).reshape(c, -1)
        self.normalized_by_batch = self.training
        if self.training:
            count = rows.shape[1]
            mean = rows.mean(axis=1, keepdims=True)
            x_hat = rows - mean
            work = np.square(x_hat)
            var = work.mean(axis=1, keepdims=True)
            self._update_running_stats(mean.reshape(self.gamma.shape),
                                       (var * (count / (count - 1))).reshape(self.gamma.shape))
        else:
            mean, var = self.running_mean.reshape(c, 1), self.running_var.reshape(c, 1)
            x_hat = rows - mean
            work = np.empty_like(x_hat)
        inv_std = 1 / np.sqrt(var + self.eps)
        x_hat *= inv_std
        self.x_hat, self.inv_std = x_hat, inv_std
        out = np.multiply(x_hat, self.gamma.reshape(c, 1), out=work)
        out += self.beta.reshape(c, 1)
        return out.reshape(c, n, height, width).transpose(1, 0, 2, 3)

    def backward(self, dout):
        """dout (N, C, H, W) -> dx, channel-major in memory; sets grad_gamma and grad_beta."""
        n, c, height, width = dout.shape
        if not self.rows_layout:
            return super().backward(dout)
        if not _is_channel_major(dout):  # the plain formulas on views of the kept rows
            x_hat, inv_std = self.x_hat, self.inv_std
            self.x_hat = x_hat.reshape(c, n, height, width).transpose(1, 0, 2, 3)
            self.inv_std = inv_std.reshape(self.gamma.shape)
            try:
                return super().backward(dout)
            finally:
                self.x_hat, self.inv_std = x_hat, inv_std
        rows = dout.transpose(1, 0, 2, 3).reshape(c, -1)
        self.grad_beta = rows.sum(axis=1, keepdims=True)
        work = np.multiply(rows, self.x_hat)
        self.grad_gamma = work.sum(axis=1, keepdims=True)
        scale = self.gamma.reshape(c, 1) * self.inv_std
        if self.normalized_by_batch:
            count = rows.shape[1]
            dx = np.multiply(self.x_hat, self.grad_gamma / -count, out=work)
            dx += rows
            dx -= self.grad_beta / count
            dx *= scale
        else:
            dx = np.multiply(rows, scale, out=work)
        self.grad_beta = self.grad_beta.reshape(self.gamma.shape)
        self.grad_gamma = self.grad_gamma.reshape(self.gamma.shape)
        return dx.reshape(c, n, height, width).transpose(1, 0, 2, 3)


class ReLU(layers.ReLU):
    """layers.ReLU computed in place: forward overwrites its input with max(x, 0), backward
    overwrites dout with dout * [x > 0]. Only for an input and a dout that nobody else keeps,
    as in the zoo's CNN, where the input is BatchNorm2d's fresh output and dout MaxPool2d's
    fresh dx. Equal bitwise to the plain layer (the same operations, written in place).
    """

    def forward(self, x):
        self.mask = np.greater(x, 0)
        return np.maximum(x, 0, out=x)

    def backward(self, dout):
        return np.multiply(dout, self.mask, out=dout)


# ---- batches prepared in a background thread ----------------------------------------------------

CHUNK_BYTES = 6 * 2**20  # with prefetching, batches are prepared about this many bytes at a time


def prefetched_batches(dataset, batches, depth):
    """The (images, labels) of each index array in `batches`, as `dataset[indices]` gives them,
    prepared by a background thread up to `depth` chunks ahead.

    A chunk is consecutive batches built by one `dataset` call and cut into batches: after
    every NumPy operation that released Python's global interpreter lock, the background
    thread must take the lock back from the training thread, and one call per chunk instead
    of one per batch keeps those hand-offs few. The first chunk is a single batch, so that
    training starts at once; each chunk's images per batch then set how many batches the
    next chunk holds, about CHUNK_BYTES of images (chunks of 512 samples made more
    hand-offs, chunks several times larger measured slower). The batches and their order
    are the plain loop's; each row of `dataset[indices]` must depend on its own index only
    (as per-image preprocessing does).
    """
    def chunks():
        start, per_chunk = 0, 1
        while start < len(batches):
            chunk = batches[start:start + per_chunk]
            images, labels = dataset[np.concatenate(chunk)]
            yield split_chunk(images, labels, chunk)
            start += per_chunk
            per_chunk = batches_per_chunk(images.nbytes // len(chunk))

    for chunk in prefetched(chunks(), depth):
        yield from chunk


def batches_per_chunk(batch_bytes):
    """How many batches of `batch_bytes` bytes of images make a chunk of about CHUNK_BYTES
    (at least one)."""
    return max(1, CHUNK_BYTES // max(1, batch_bytes))


def split_chunk(images, labels, chunk):
    """Cut a chunk's (images, labels), prepared for the index arrays `chunk` together, into
    one (images, labels) pair per index array, as views."""
    ends = np.cumsum([len(indices) for indices in chunk])
    return [(images[end - len(indices):end], labels[end - len(indices):end])
            for indices, end in zip(chunk, ends)]


def prefetched(items, depth):
    """Iterate over `items`, which a background thread computes up to `depth` items ahead.

    NumPy releases the GIL inside its array loops (gathering rows, converting types), so the
    work truly runs on another core; but the thread takes the lock back after each of them,
    and the training thread then waits for it. A worker process (worker.py) does not share
    the lock, which makes it faster where it is available. An exception raised while
    computing an item is raised here, at that item. Stopping early (break, an error,
    Ctrl-C) stops the thread.
    """
    ready = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in items:
                ready.put((True, item))
                if stop.is_set():
                    return
            ready.put((False, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            ready.put((False, exc))

    worker = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            is_item, value = ready.get()
            if not is_item:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        while worker.is_alive():  # let a worker blocked on a full queue finish its put
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.01)
