"""Every model's epoch as a ratio to its arithmetic floor, and to the code before a change.

    python bench/bench_floor.py                                  # current code only
    python bench/bench_floor.py --baseline /tmp/baseline         # and the older checkout
    python bench/bench_floor.py --baseline /tmp/baseline --busy  # and under 2 busy processes

The older checkout is made with `git worktree add /tmp/baseline <commit>`; it is imported
with PYTHONPATH pointing at it, in a process of its own.

What a process measures (all in that one process, so that the ratios do not depend on the
machine's spell):

- softmax, float64 and float32, batch 100: a whole training epoch with validation
  (Solver.train, history.epoch_time; the median of a run's epochs after the first, which
  also starts the prefetching and prepares the validation batches, and is reported apart),
  and its floor, a bare loop doing only the two (100 x 784) . (784 x 10) products of every
  batch (forward x W, backward x^T d) on contiguous arrays, with one BLAS thread (and the
  same products in the softmax model's own layout, column-major W, which BLAS runs faster
  in float32); and the bare NumPy epoch (softmax_bare_numpy: the same arithmetic with no
  framework around it), which bounds what any NumPy code can reach against that floor;
- mlp (batch 128) and cnn (batch 64), float32: the training step (forward, backward, the
  optimizer's update) over `--batches` batches prepared beforehand, extrapolated to the
  55,000-sample epoch, and its floor, the model's matrix products alone (the BLAS calls
  with the same shapes, forward and backward) under the same BLAS thread limit; also the
  training thread's CPU time (time.thread_time) of the step, which a busy machine does not
  inflate (with one BLAS thread, all the step's work runs on that thread); and the least
  NumPy update of the model's parameters (least_update_seconds), which with the products
  bounds any NumPy step, and so the speed-up over the baseline that NumPy can reach;
- cnn only: the bare NumPy step (cnn_bare_numpy: the same loss and gradients, with Adam, in
  the fewest NumPy passes we could write, no framework), which shows how much of that room
  NumPy code reaches here.

The parent runs `--rounds` rounds; in each, the current code and the baseline alternate
(each a fresh process), and the ratios current / baseline are taken within the round. The
table gives medians over rounds and their range. `--blas-threads N` sets cfg['blas_threads']
for both sides (by default each Solver chooses: measure with what the tree holds). `--busy`
repeats the current code with two CPU-bound processes started beside it
(`python -c 'while True: pass'`), and gives each epoch's ratio to the same round's idle one.
`uptime` is printed before and after: on a shared machine, read the ratios, not the
absolute times.
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCH_SAMPLES = 55000
STEP_MODELS = {"mlp": 128, "cnn": 64}  # model: batch size
TARGETS = {  # the targets, as (name, limit, 'max' or 'min')
    "softmax_float64 / floor": (1.7, "max"), "softmax_float32 / floor": (2.2, "max"),
    "cnn speed-up": (1.6, "min"), "mlp speed-up": (1.3, "min"),
}


# ---- the floors: the matrix products alone ------------------------------------------------

def _gemm_shapes(model_name, batch):
    """[(m, k, n, transpose_a, transpose_b)] of every matrix product of one training step."""
    if model_name == "mlp":
        sizes = (784, 512, 128, 10)
        shapes = []
        for index, (d, m) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes.append((batch, d, m, False, False))            # x @ W
            shapes.append((d, batch, m, True, False))              # x^T @ dout
            if index:
                shapes.append((batch, m, d, False, True))          # dout @ W^T
        return shapes
    if model_name == "cnn":
        shapes = []
        channels, side = 1, 28
        for index, out_channels in enumerate((16, 32)):
            k, cols = channels * 9, batch * side * side
            shapes.append((out_channels, k, cols, False, False))   # W @ cols
            shapes.append((out_channels, cols, k, False, True))    # dout @ cols^T
            if index:
                shapes.append((k, out_channels, cols, True, False))  # W^T @ dout
            channels, side = out_channels, side // 2
        sizes = (channels * side * side, 392, 196, 10)
        for d, m in zip(sizes[:-1], sizes[1:]):
            shapes += [(batch, d, m, False, False), (d, batch, m, True, False),
                       (batch, m, d, False, True)]
        return shapes
    raise ValueError(model_name)


def products_seconds(shapes, dtype, repeats=20):
    """Median time of one pass over the products `shapes` on random contiguous arrays."""
    rng = np.random.default_rng(0)
    operands = []
    for m, k, n, ta, tb in shapes:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        operands.append((a.T if ta else a, b.T if tb else b))
    times = []
    for _ in range(repeats + 2):
        start = time.perf_counter()
        for a, b in operands:
            a @ b
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def softmax_floor(dtype, batch=100, samples=EPOCH_SAMPLES, model_layout=False):
    """Seconds of the bare loop: per batch, x W and x^T d, (100 x 784) . (784 x 10), on
    row-major W and d (the floor of the report); with `model_layout`, the same products in the
    layout the softmax model uses: W column-major, x^T d computed as (d^T x)^T."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, 784)).astype(dtype)
    w = rng.standard_normal((784, 10)).astype(dtype)
    d = rng.standard_normal((batch, 10)).astype(dtype)
    if model_layout:
        w, d = np.asfortranarray(w), np.asfortranarray(d)
    best = []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(3):
            start = time.perf_counter()
            for first in range(0, samples, batch):
                xb = x[first:first + batch]
                xb @ w
                (d.T @ xb).T if model_layout else xb.T @ d
            best.append(time.perf_counter() - start)
    return float(np.median(best))


def bare_softmax_cross_entropy(z, labels):
    """The softmax cross-entropy of (N, C) logits z in the fewest NumPy passes, in place:
    z becomes exp(z - max z). Returns (summed loss, correct predictions, the (N, 1) row sums
    of exp(z - max z)); `bare_softmax_gradient` turns z into dL/dz of the mean loss."""
    correct = np.count_nonzero(z.argmax(axis=1) == labels)
    z -= z.max(axis=1, keepdims=True)
    label_z = z[np.arange(len(labels)), labels]
    np.exp(z, out=z)
    sum_exp = z.sum(axis=1, keepdims=True)
    return float(np.log(sum_exp).sum() - label_z.sum()), correct, sum_exp


def bare_softmax_gradient(exp_z, sum_exp, labels):
    """dL/dz = (softmax(z) - one_hot(labels)) / N, in place on exp_z, from
    bare_softmax_cross_entropy's results."""
    exp_z /= sum_exp
    exp_z[np.arange(len(labels)), labels] -= 1
    exp_z /= len(labels)
    return exp_z


def softmax_bare_numpy(dtype, batch=100, samples=EPOCH_SAMPLES, val_samples=5000):
    """Seconds of the least a NumPy epoch of softmax regression must do, with no framework
    around it: per batch of contiguous rows (no shuffling, no conversion, no checks, no
    history), the two products, the softmax with its loss and accuracy, the gradient and
    the momentum update; then the validation pass (product, loss, accuracy) over
    `val_samples` rows. If this loop is already above a target ratio to the two-product
    floor, no framework in NumPy can meet that target on this machine."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples + val_samples, 784)).astype(dtype)
    y = rng.integers(0, 10, samples + val_samples)
    w, b = np.zeros((784, 10), dtype), np.zeros((1, 10), dtype)
    vw, vb = np.zeros_like(w), np.zeros_like(b)

    def scores(xb, yb):
        z = xb @ w
        z += b
        return (z, *bare_softmax_cross_entropy(z, yb))

    def epoch(w=w, b=b, vw=vw, vb=vb):   # the same arrays, updated in place
        totals = [0.0, 0]
        for first in range(0, samples, batch):
            xb, yb = x[first:first + batch], y[first:first + batch]
            z, loss, correct, sum_exp = scores(xb, yb)
            totals[0] += loss
            totals[1] += correct
            z = bare_softmax_gradient(z, sum_exp, yb)
            vw *= 0.9
            vw -= 0.01 * (xb.T @ z)
            w += vw
            vb *= 0.9
            vb -= 0.01 * z.sum(axis=0, keepdims=True)
            b += vb
        for first in range(samples, samples + val_samples, batch):
            scores(x[first:first + batch], y[first:first + batch])

    times = []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(3):
            start = time.perf_counter()
            epoch()
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def adam_update(p, g, m, v):
    """Adam (lr 0.001, betas 0.9 and 0.999) in its fewest NumPy passes, its bias corrections
    folded into the step size (a scalar, so left out here)."""
    m *= 0.9
    m += 0.1 * g
    v *= 0.999
    v += 0.001 * (g * g)
    p -= 0.001 * m / (np.sqrt(v) + 1e-8)


def least_update_seconds(shapes, rule, dtype, repeats=20):
    """Median time of one update of parameters of `shapes` by `rule` ('sgd': momentum 0.9;
    'adam') written in the fewest NumPy passes: in-place ufuncs on arrays made beforehand, no
    checks, no state lookup. Any NumPy optimizer spends at least this much a step: the
    products plus this bound the step."""
    rng = np.random.default_rng(0)
    params = [(rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype),
               np.zeros(shape, dtype), np.zeros(shape, dtype)) for shape in shapes]

    def sgd():
        for p, g, v, _ in params:
            v *= 0.9
            v -= 0.03 * g
            p += v

    def adam():
        for p, g, m, v in params:
            adam_update(p, g, m, v)

    update = {"sgd": sgd, "adam": adam}[rule]
    times = []
    for _ in range(repeats + 2):
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


# ---- the least NumPy CNN step --------------------------------------------------------------
#
# The CNN's training step written with no framework around it, in the fewest NumPy passes
# we could find: channel-major (C, N, H, W) activations throughout, so that each convolution
# is one product on the im2col matrix and every BatchNorm statistic one contiguous row
# reduction; max-pooling and ReLU undone together in the backward pass; col2im started from
# the centre tap, which reaches every pixel. tests/test_bench_floor.py proves it computes the
# model's loss and gradients. Where the products and the least update leave room for a
# speed-up, this step shows how much of it NumPy code reaches on this machine.

EPS = 1e-5  # BatchNorm's
CNN_SHAPES = {"conv1.W": (16, 1, 3, 3), "conv1.b": (16,), "bn1.gamma": (16,),
              "bn1.beta": (16,), "conv2.W": (32, 16, 3, 3), "conv2.b": (32,),
              "bn2.gamma": (32,), "bn2.beta": (32,), "fc1.W": (1568, 392), "fc1.b": (392,),
              "fc2.W": (392, 196), "fc2.b": (196,), "fc3.W": (196, 10), "fc3.b": (10,)}


def _im2col(padded):
    """padded (C, N, H+2, W+2) -> the (C*9, N*H*W) matrix of a 3x3, stride-1 convolution,
    row (c, kh, kw), column (n, i, j): one copy out of the strided windows."""
    windows = sliding_window_view(padded, (3, 3), axis=(2, 3))        # (C, N, H, W, 3, 3)
    cols = np.ascontiguousarray(windows.transpose(0, 4, 5, 1, 2, 3))
    return cols.reshape(padded.shape[0] * 9, -1)


def _col2im(dcols, channels, n, height, width):
    """The adjoint of _im2col, cut to the unpadded (C, N, H, W) image. Output pixel (i, j)
    of tap (kh, kw) reads input pixel (i + kh - 1, j + kw - 1); the centre tap reaches every
    pixel, so it starts the sum and the other eight add where they reach."""
    dcols = dcols.reshape(channels, 3, 3, n, height, width)
    dx = dcols[:, 1, 1].copy()

    def reach(k, size):   # (output slice, input slice) of offset k - 1 along an axis
        return (slice(max(0, 1 - k), size - max(0, k - 1)),
                slice(max(0, k - 1), size - max(0, 1 - k)))

    for kh in range(3):
        for kw in range(3):
            if (kh, kw) != (1, 1):
                (out_i, in_i), (out_j, in_j) = reach(kh, height), reach(kw, width)
                dx[:, :, in_i, in_j] += dcols[:, kh, kw, :, out_i, out_j]
    return dx


def _block_forward(padded, W, b, gamma, beta):
    """conv3x3 - BatchNorm (batch statistics) - ReLU - maxpool 2x2 on channel-major rows:
    padded (C, N, H+2, W+2) -> pooled (F, N, H/2, W/2), and what the backward pass needs."""
    filters, n = W.shape[0], padded.shape[1]
    height, width = padded.shape[2] - 2, padded.shape[3] - 2
    cols = _im2col(padded)
    z = W.reshape(filters, -1) @ cols
    z += b.reshape(-1, 1)
    z -= z.mean(axis=1, keepdims=True)
    inv_std = 1 / np.sqrt(np.einsum("ij,ij->i", z, z)[:, None] / z.shape[1] + EPS)
    z *= inv_std                                                         # x_hat
    a = z * gamma.reshape(-1, 1)
    a += beta.reshape(-1, 1)
    np.maximum(a, 0, out=a)
    windows = a.reshape(filters, n, height // 2, 2, width // 2, 2)
    pooled = np.maximum(windows[:, :, :, 0, :, 0], windows[:, :, :, 0, :, 1])
    np.maximum(pooled, windows[:, :, :, 1, :, 0], out=pooled)
    np.maximum(pooled, windows[:, :, :, 1, :, 1], out=pooled)
    return pooled, (cols, z, inv_std, windows, pooled)


def _block_backward(dpooled, W, gamma, cache, needs_dcols):
    """dL/dpooled (F, N, H/2, W/2) -> dL/dW, dL/db, dL/dgamma, dL/dbeta and dL/dcols (or
    None). Max-pooling and ReLU backward in one: dout goes to the entries equal to their
    window's maximum where that maximum is > 0 (a zero maximum is the ReLU's zero)."""
    cols, x_hat, inv_std, windows, pooled = cache
    filters, count = x_hat.shape
    dpooled = dpooled * (pooled > 0)
    da = np.empty_like(x_hat)
    d_windows = da.reshape(windows.shape)
    for u in range(2):
        for v in range(2):
            np.multiply(dpooled, windows[:, :, :, u, :, v] == pooled,
                        out=d_windows[:, :, :, u, :, v])
    dbeta = da.sum(axis=1, keepdims=True)
    dgamma = np.einsum("ij,ij->i", da, x_hat)[:, None]
    dz = x_hat * (dgamma / -count)
    dz += da
    dz -= dbeta / count
    dz *= gamma.reshape(-1, 1) * inv_std
    dcols = W.reshape(filters, -1).T @ dz if needs_dcols else None
    return ((dz @ cols.T).reshape(W.shape), dz.sum(axis=1), dgamma.ravel(), dbeta.ravel(),
            dcols)


def bare_cnn_gradients(params, images, labels):
    """(loss, correct, gradients) of the CNN (conv3x3(16)-BN-ReLU-maxpool2, conv3x3(32)-BN-
    ReLU-maxpool2, 1568-392-196-10 with ReLU, softmax cross-entropy) on images (N, 28, 28)
    and labels (N,); params and gradients are dicts keyed as CNN_SHAPES."""
    n = len(images)
    padded = np.zeros((1, n, 30, 30), images.dtype)
    padded[0, :, 1:-1, 1:-1] = images
    pooled1, cache1 = _block_forward(padded, params["conv1.W"], params["conv1.b"],
                                     params["bn1.gamma"], params["bn1.beta"])
    padded = np.zeros((16, n, 16, 16), images.dtype)
    padded[:, :, 1:-1, 1:-1] = pooled1
    pooled2, cache2 = _block_forward(padded, params["conv2.W"], params["conv2.b"],
                                     params["bn2.gamma"], params["bn2.beta"])
    features = pooled2.transpose(1, 0, 2, 3).reshape(n, -1)             # (N, 1568)
    hidden1 = features @ params["fc1.W"]
    hidden1 += params["fc1.b"]
    np.maximum(hidden1, 0, out=hidden1)
    hidden2 = hidden1 @ params["fc2.W"]
    hidden2 += params["fc2.b"]
    np.maximum(hidden2, 0, out=hidden2)
    scores = hidden2 @ params["fc3.W"]
    scores += params["fc3.b"]
    loss, correct, sum_exp = bare_softmax_cross_entropy(scores, labels)
    scores = bare_softmax_gradient(scores, sum_exp, labels)              # dL/dscores
    grads = {"fc3.W": hidden2.T @ scores, "fc3.b": scores.sum(axis=0)}
    d_hidden2 = scores @ params["fc3.W"].T
    d_hidden2 *= hidden2 > 0
    grads["fc2.W"], grads["fc2.b"] = hidden1.T @ d_hidden2, d_hidden2.sum(axis=0)
    d_hidden1 = d_hidden2 @ params["fc2.W"].T
    d_hidden1 *= hidden1 > 0
    grads["fc1.W"], grads["fc1.b"] = features.T @ d_hidden1, d_hidden1.sum(axis=0)
    d_pooled2 = (d_hidden1 @ params["fc1.W"].T).reshape(n, 32, 7, 7).transpose(1, 0, 2, 3)
    (grads["conv2.W"], grads["conv2.b"], grads["bn2.gamma"], grads["bn2.beta"],
     dcols) = _block_backward(d_pooled2, params["conv2.W"], params["bn2.gamma"], cache2, True)
    d_pooled1 = _col2im(dcols, 16, n, 14, 14)
    (grads["conv1.W"], grads["conv1.b"], grads["bn1.gamma"], grads["bn1.beta"],
     _) = _block_backward(d_pooled1, params["conv1.W"], params["bn1.gamma"], cache1, False)
    return loss / n, correct, grads


def cnn_bare_numpy(batch=64, steps=60, dtype=np.float32):
    """Seconds of a 55,000-sample epoch of the bare CNN step (bare_cnn_gradients, then
    adam_update of every parameter) with one BLAS thread, on random batches made beforehand:
    the median step, extrapolated."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    params = {key: (0.05 * rng.standard_normal(shape)).astype(dtype)
              for key, shape in CNN_SHAPES.items()}
    moments = {key: (np.zeros_like(p), np.zeros_like(p)) for key, p in params.items()}
    images = rng.random((steps + 5, batch, 28, 28)).astype(dtype)
    labels = rng.integers(0, 10, (steps + 5, batch))
    times = []
    with threadpool_limits(limits=1, user_api="blas"):
        for x, y in zip(images, labels):
            start = time.perf_counter()
            _, _, grads = bare_cnn_gradients(params, x, y)
            for key, p in params.items():
                adam_update(p, grads[key], *moments[key])
            times.append(time.perf_counter() - start)
    return float(np.median(times[5:])) * -(-EPOCH_SAMPLES // batch)


# ---- one process's measurement ------------------------------------------------------------

BLAS_THREADS = None  # cfg['blas_threads'] of every measured run (None: the Solver's default)


def _quiet_solver(cfg):
    from mnistlab import Solver
    with contextlib.redirect_stdout(io.StringIO()):
        return Solver({"display_freq": 10**9, "seed": 0, "blas_threads": BLAS_THREADS, **cfg})


def softmax_epoch(dtype, epochs):
    """(median epoch time after the first, first epoch time) of softmax regression, batch
    100, lr 0.01, validation included. The first epoch also starts the prefetching worker and
    prepares the validation batches that later epochs reuse: it is reported apart, and the
    median is that of the epochs a run repeats, as the floor is the median of repeated
    passes."""
    runner = _quiet_solver({"max_epoch": epochs, "batch_size": 100, "learning_rate": 0.01,
                            "momentum": 0.9, "dtype": dtype})
    with contextlib.redirect_stdout(io.StringIO()):
        runner.train()
    first, *later = runner.history.epoch_time
    return float(np.median(later)), float(first)


def step_epoch(model_name, batches):
    """(epoch-equivalent seconds of the training step, floor seconds) for mlp or cnn, float32."""
    batch = STEP_MODELS[model_name]
    cfg = {"model": model_name, "dtype": "float32", "batch_size": batch, "max_epoch": 1}
    cfg.update({"optimizer": "adam", "learning_rate": 0.001} if model_name == "cnn" else
               {"learning_rate": 0.03, "momentum": 0.9})
    runner = _quiet_solver(cfg)
    prepared = []
    for images, labels in runner.train_loader:
        prepared.append((images, labels))
        if len(prepared) == batches + 5:
            break
    model, optimizer = runner.model, runner.optimizer
    model.train()
    with runner._blas_threads():
        times, cpu_times = [], []
        for images, labels in prepared:
            start, cpu_start = time.perf_counter(), time.thread_time()
            model.forward(images, labels)
            model.gradient_computing()
            optimizer.step()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.thread_time() - cpu_start)
        floor = products_seconds(_gemm_shapes(model_name, batch), np.float32)
        update = least_update_seconds([p.shape for _, p, _ in model.named_parameters()],
                                      cfg.get("optimizer", "sgd"), np.float32)
    steps = -(-EPOCH_SAMPLES // batch)
    return (float(np.median(times[5:])) * steps, floor * steps,
            float(np.median(cpu_times[5:])) * steps, update * steps)


def child(args):
    """Measure everything in this process; print one JSON line."""
    global BLAS_THREADS
    BLAS_THREADS = args.blas_threads
    result = {"pythonpath": os.environ.get("PYTHONPATH", ""), "load": os.getloadavg()[0]}
    for dtype in ("float64", "float32"):
        result[f"softmax_{dtype}"], result[f"softmax_{dtype}_first"] = softmax_epoch(
            dtype, args.epochs)
        result[f"softmax_{dtype}_floor"] = softmax_floor(dtype)
        result[f"softmax_{dtype}_model_floor"] = softmax_floor(dtype, model_layout=True)
        result[f"softmax_{dtype}_bare"] = softmax_bare_numpy(dtype)
    for name in STEP_MODELS:
        (result[name], result[f"{name}_floor"], result[f"{name}_cpu"],
         result[f"{name}_update"]) = step_epoch(name, args.batches)
    result["cnn_bare"] = cnn_bare_numpy(steps=args.batches)
    try:
        from threadpoolctl import threadpool_info
        result["blas"] = [pool["num_threads"] for pool in threadpool_info()
                          if pool["user_api"] == "blas"]
    except ImportError:
        pass
    print(json.dumps(result))


# ---- the parent: rounds, baselines, busy processes -----------------------------------------

def run_child(args, pythonpath=None, blas_threads="same"):
    blas_threads = args.blas_threads if blas_threads == "same" else blas_threads
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    else:
        env.pop("PYTHONPATH", None)
    command = [sys.executable, os.path.abspath(__file__), "--child", "--epochs",
               str(args.epochs), "--batches", str(args.batches)]
    if blas_threads is not None:
        command += ["--blas-threads", str(blas_threads)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env,
                         cwd="/tmp").stdout
    return json.loads(out.strip().splitlines()[-1])


@contextlib.contextmanager
def busy_processes(count):
    """`count` CPU-bound processes running for the duration of the block (stopped by pid)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


def uptime():
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


KEYS = ("softmax_float64", "softmax_float32", "mlp", "cnn")


def summarise(rounds, has_baseline, has_busy):
    def stat(values):
        return statistics.median(values), min(values), max(values)

    def ratio(numerator, denominator):   # current code's measures, round by round
        return stat([r["current"][numerator] / r["current"][denominator] for r in rounds])

    rows = []
    for key in KEYS:
        floor = f"{key}_floor"
        row = {"key": key, "epoch": stat([r["current"][key] for r in rounds]),
               "floor": stat([r["current"][floor] for r in rounds]),
               "ratio_floor": ratio(key, floor)}
        if f"{key}_model_floor" in rounds[0]["current"]:
            row["ratio_model_floor"] = ratio(key, f"{key}_model_floor")
        if f"{key}_first" in rounds[0]["current"]:
            row["first_floor"] = ratio(f"{key}_first", floor)
        if f"{key}_bare" in rounds[0]["current"] and key not in STEP_MODELS:  # softmax
            row["bare_floor"] = ratio(f"{key}_bare", floor)
        if has_baseline:
            row["baseline"] = stat([r["baseline"][key] for r in rounds])
            row["baseline_floor"] = stat([r["baseline"][key] / r["baseline"][f"{key}_floor"]
                                          for r in rounds])
            row["speedup"] = stat([r["baseline"][key] / r["current"][key] for r in rounds])
            if f"{key}_cpu" in rounds[0]["current"]:
                row["cpu_speedup"] = stat([r["baseline"][f"{key}_cpu"] / r["current"][f"{key}_cpu"]
                                           for r in rounds])
            if f"{key}_bare" in rounds[0]["current"] and key in STEP_MODELS:
                row["bare"] = stat([r["current"][f"{key}_bare"] for r in rounds])
                row["over_bare"] = stat([r["current"][key] / r["current"][f"{key}_bare"]
                                         for r in rounds])
                row["bare_speedup"] = stat([r["baseline"][key] / r["current"][f"{key}_bare"]
                                            for r in rounds])
            if f"{key}_update" in rounds[0]["current"]:
                row["update"] = stat([r["current"][f"{key}_update"] for r in rounds])
                row["largest_speedup"] = stat([
                    r["baseline"][key]
                    / (r["current"][f"{key}_floor"] + r["current"][f"{key}_update"])
                    for r in rounds])
        if has_busy:
            row["busy"] = stat([r["busy"][key] for r in rounds])
            row["busy_ratio"] = stat([r["busy"][key] / r["current"][key] for r in rounds])
        rows.append(row)
    return rows


def fmt(triple, digits=3, suffix=""):
    median, low, high = triple
    return f"{median:.{digits}f}{suffix} ({low:.{digits}f}-{high:.{digits}f})"


def print_report(rows, args):
    print(f"\n{args.rounds} rounds; medians (range over rounds). Epochs of mlp/cnn are the "
          f"training step over {args.batches} batches, extrapolated to 55,000 samples.\n")
    header = "| model | epoch (s) | floor (s) | epoch / floor |"
    if args.baseline:
        header += " baseline epoch (s) | baseline / its floor | speed-up (baseline / current) |"
    if args.busy:
        header += " busy epoch (s) | busy / idle |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in rows:
        line = (f"| {row['key']} | {fmt(row['epoch'])} | {fmt(row['floor'])} | "
                f"{fmt(row['ratio_floor'], 2, 'x')} |")
        if args.baseline:
            line += (f" {fmt(row['baseline'])} | {fmt(row['baseline_floor'], 2, 'x')} | "
                     f"{fmt(row['speedup'], 2, 'x')} |")
        if args.busy:
            line += f" {fmt(row['busy'])} | {fmt(row['busy_ratio'], 2, 'x')} |"
        print(line)
    if args.baseline:
        print("\nCPU time of the training thread (the step's own work, whatever the machine's "
              "load; meaningful with one BLAS thread): speed-up baseline / current")
        for row in rows:
            if "cpu_speedup" in row:
                print(f"- {row['key']}: {fmt(row['cpu_speedup'], 3, 'x')}")
        print("\nThe matrix products plus the least NumPy update of the parameters "
              "(least_update_seconds), per epoch, and the largest speed-up over the baseline "
              "that they leave to a NumPy step:")
        for row in rows:
            if "largest_speedup" in row:
                print(f"- {row['key']}: update {fmt(row['update'])} s; products + update "
                      f"{row['floor'][0] + row['update'][0]:.3f} s; largest speed-up "
                      f"{fmt(row['largest_speedup'], 2, 'x')}")
        print("\nThe CNN step in the fewest NumPy passes we could write (cnn_bare_numpy: no "
              "framework, the same loss and gradients, Adam), per epoch, and the speed-up over "
              "the baseline that it reaches:")
        for row in rows:
            if "bare_speedup" in row:
                print(f"- {row['key']}: bare step {fmt(row['bare'])} s; current / bare "
                      f"{fmt(row['over_bare'], 2, 'x')}; baseline / bare "
                      f"{fmt(row['bare_speedup'], 2, 'x')}")
    print("\nThe softmax epoch over the floor measured in the softmax model's own layout "
          "(W column-major, x^T d as (d^T x)^T), which runs the products faster in float32:")
    for row in rows:
        if "ratio_model_floor" in row:
            print(f"- {row['key']}: {fmt(row['ratio_model_floor'], 2, 'x')}")
    print("\nThe first softmax epoch of each run (it also starts the prefetching worker and "
          "prepares the validation batches that later epochs reuse), over the floor:")
    for row in rows:
        if "first_floor" in row:
            print(f"- {row['key']}: {fmt(row['first_floor'], 2, 'x')}")
    print("\nThe least a NumPy softmax epoch must do (softmax_bare_numpy: products, softmax, "
          "loss, accuracy, update, validation; no framework), over the same floor:")
    for row in rows:
        if "bare_floor" in row:
            print(f"- {row['key']}: {fmt(row['bare_floor'], 2, 'x')}")
    print()
    by_key = {row["key"]: row for row in rows}
    checks = [("softmax_float64 / floor", by_key["softmax_float64"]["ratio_floor"][0]),
              ("softmax_float32 / floor", by_key["softmax_float32"]["ratio_floor"][0])]
    if args.baseline:
        checks += [("cnn speed-up", by_key["cnn"]["speedup"][0]),
                   ("mlp speed-up", by_key["mlp"]["speedup"][0])]
    for name, value in checks:
        limit, kind = TARGETS[name]
        met = value <= limit if kind == "max" else value >= limit
        verdict = "met" if met else "NOT met"
        row = by_key.get(name.split(" ")[0], {})
        bare, largest = row.get("bare_floor"), row.get("largest_speedup")
        bare_speedup = row.get("bare_speedup")
        if not met and bare and bare[1] > limit:
            verdict += (f"; beyond NumPy here: the bare loop alone is {bare[1]:.2f}x or more "
                        f"in every round")
        if not met and largest and largest[2] < limit:
            verdict += (f"; beyond NumPy here: the products and the least update leave at "
                        f"most {largest[2]:.2f}x in every round")
        elif not met and bare_speedup and bare_speedup[2] < limit:
            verdict += (f"; out of reach of the fastest NumPy step we could write: it is at "
                        f"most {bare_speedup[2]:.2f}x faster than the baseline in every round")
        print(f"{name}: {value:.2f} (target {'<=' if kind == 'max' else '>='} {limit}: {verdict})")
    if args.busy:
        for row in rows:
            value = row["busy_ratio"][0]
            print(f"{row['key']} busy / idle: {value:.2f} (target <= 4: "
                  f"{'met' if value <= 4 else 'NOT met'})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5,
                        help="softmax epochs per process, at least 2: the first is reported "
                             "apart, the median of the others is the epoch")
    parser.add_argument("--batches", type=int, default=120, help="mlp/cnn steps timed")
    parser.add_argument("--baseline", help="checkout of the code before the change")
    parser.add_argument("--busy", action="store_true", help="also run beside 2 busy processes")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="cfg['blas_threads'] of every run, current and baseline (default: "
                             "each Solver's own choice)")
    parser.add_argument("--baseline-default-threads", action="store_true",
                        help="run the baseline with its Solver's own BLAS threads whatever "
                             "--blas-threads says (the code before the change, as it was)")
    parser.add_argument("--json", help="write every round's raw numbers here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is reported apart")
    if args.child:
        child(args)
        return
    print(f"load average before: {uptime()}  cores: {os.cpu_count()}  blas_threads: "
          f"{'each Solver default' if args.blas_threads is None else args.blas_threads}")
    rounds = []
    for number in range(args.rounds):
        measured = {}
        order = ["current", "baseline"] if number % 2 == 0 else ["baseline", "current"]
        for which in order:
            if which == "baseline" and not args.baseline:
                continue
            if which == "baseline":
                measured[which] = run_child(args, args.baseline, None if
                                            args.baseline_default_threads else "same")
            else:
                measured[which] = run_child(args, ROOT)
        if args.busy:
            with busy_processes(2):
                measured["busy"] = run_child(args, ROOT)
        rounds.append(measured)
        print(f"round {number}: load {uptime()}: " + ", ".join(
            f"{which} cnn {m['cnn']:.2f}s" for which, m in measured.items()), flush=True)
    print(f"load average after: {uptime()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rounds, f, indent=1)
    print_report(summarise(rounds, bool(args.baseline), args.busy), args)


if __name__ == "__main__":
    main()
