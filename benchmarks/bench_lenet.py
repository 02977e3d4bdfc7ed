"""Time the tutorial's LeNet training and validation steps, against PyTorch.

Builds the model with ``convolutional_mlp.build_model`` (the tutorial's own
graph: batch 500, nkerns 20/50, float32, data in shared variables, minibatch
by index), reports the compile time of the functions, then times
``train_model(i)`` and ``validate_model(i)`` calls. When ``torch`` is
importable the same model (same initial weights, same SGD step) runs in
PyTorch eager in a second process, and the two take turns in short blocks of
calls, so both see the same machine load; the ratio PyTensor / PyTorch is
printed at the end (< 1 means PyTensor is faster).

Why two processes: with both frameworks in one process, torch's OpenMP
threads and OpenBLAS's threads spin against each other on a 2-core machine
and both slow down 3-20x (measured), which says nothing about either.

Examples::

    python benchmarks/bench_lenet.py                      # default mode (Numba)
    python benchmarks/bench_lenet.py --mode CVM --rounds 50
    python benchmarks/bench_lenet.py --mode JAX           # GPU with a CUDA jax

Numbers are medians over rounds; compare only runs made on a quiet machine.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "code"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default=None,
                        help="PyTensor mode: NUMBA (default), CVM (C linker), JAX")
    parser.add_argument("--rounds", type=int, default=30, help="timed calls per function (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for our kernels (Numba) and for torch "
                             "(default: all cores for both)")
    parser.add_argument("--dataset", default="mnist.pkl.gz", help="as for load_data")
    parser.add_argument("--block", type=int, default=5,
                        help="calls per turn when alternating with torch (default 5)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--torch-worker", metavar="NPZ", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def set_threads(n):
    """Thread counts must be in the environment before numpy/BLAS load."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    float(result)  # forces JAX's asynchronous result to be ready
    return time.perf_counter() - start


def torch_model(weights, data, batch_size=500, learning_rate=0.1):
    """PyTorch eager twin of the tutorial's LeNet, from the same initial weights.

    ``weights``: the PyTensor parameters in ``layer0.W, layer0.b, ..., layer3.b``
    order; ``data``: ``(train_x, train_y, valid_x, valid_y)`` numpy arrays.
    Returns ``(train_step(i), validate_step(i))``.
    """
    import torch
    import torch.nn.functional as F

    w0, b0, w1, b1, w2, b2, w3, b3 = weights
    # conv2d flips the filters (a true convolution); torch correlates
    w0, w1 = w0[:, :, ::-1, ::-1], w1[:, :, ::-1, ::-1]
    params = [torch.tensor(v.copy(), requires_grad=True) for v in (w0, b0, w1, b1, w2, b2, w3, b3)]
    w0, b0, w1, b1, w2, b2, w3, b3 = params
    train_x, train_y, valid_x, valid_y = (torch.from_numpy(a) for a in data)
    train_y, valid_y = train_y.long(), valid_y.long()

    def forward(x):
        h = x.reshape(-1, 1, 28, 28)
        h = torch.tanh(F.max_pool2d(F.conv2d(h, w0), 2) + b0.view(1, -1, 1, 1))
        h = torch.tanh(F.max_pool2d(F.conv2d(h, w1), 2) + b1.view(1, -1, 1, 1))
        h = torch.tanh(h.flatten(1) @ w2 + b2)
        return h @ w3 + b3

    def train_step(i):
        sl = slice(i * batch_size, (i + 1) * batch_size)
        cost = F.cross_entropy(forward(train_x[sl]), train_y[sl])
        grads = torch.autograd.grad(cost, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= learning_rate * g
        return cost.detach()

    def validate_step(i):
        sl = slice(i * batch_size, (i + 1) * batch_size)
        with torch.no_grad():
            return (forward(valid_x[sl]).argmax(1) != valid_y[sl]).double().mean()

    return train_step, validate_step


def torch_worker(npz_path, threads):
    """Child process: answer "train|valid START COUNT" lines with JSON timings."""
    import json

    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)
    with np.load(npz_path) as saved:
        weights = [saved[f"w{i}"] for i in range(8)]
        data = [saved[k] for k in ("train_x", "train_y", "valid_x", "valid_y")]
    train_step, validate_step = torch_model(weights, data)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        what, start, count = line.split()
        step = train_step if what == "train" else validate_step
        times = [timed(step, int(start) + k) for k in range(int(count))]
        print(json.dumps(times), flush=True)


class TorchPeer:
    """The torch worker process, fed the same weights and data as PyTensor."""

    def __init__(self, model, datasets, threads):
        import json
        import subprocess
        import tempfile

        import numpy as np

        self.json = json
        (train_x, train_y), (valid_x, valid_y), _ = [
            (x.get_value(borrow=True), y.owner.inputs[0].get_value(borrow=True)) for x, y in datasets
        ]
        layer0, layer1, layer2, layer3 = model.layers
        weights = [p.get_value() for layer in (layer0, layer1, layer2, layer3) for p in (layer.W, layer.b)]
        self.tmp = tempfile.NamedTemporaryFile(suffix=".npz")
        np.savez(self.tmp.name, train_x=train_x, train_y=train_y, valid_x=valid_x, valid_y=valid_y,
                 **{f"w{i}": w for i, w in enumerate(weights)})
        cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", self.tmp.name]
        if threads:
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        json.loads(self.proc.stdout.readline())  # waits until torch is ready

    def run(self, what, start, count):
        self.proc.stdin.write(f"{what} {start} {count}\n")
        self.proc.stdin.flush()
        return self.json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
        self.tmp.close()


def torch_available():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def summary(name, seconds):
    ms = [s * 1e3 for s in seconds]
    return f"{name:28s} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f}   max {max(ms):8.1f}"


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    if args.torch_worker:
        return torch_worker(args.torch_worker, args.threads)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "floatX" not in flags:
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, "floatX=float32") if f)

    import numba
    import pytensor

    import convolutional_mlp
    import pytensor_nnet
    from mnist_io import load_data
    from pytensor_nnet import blas

    if args.mode:
        pytensor.config.mode = args.mode
    print(f"pytensor {pytensor.__version__}, mode {pytensor.config.mode}, floatX {pytensor.config.floatX}, "
          f"kernel threads {pytensor_nnet.get_num_threads()} (Numba {numba.threading_layer()}), "
          f"BLAS {'/'.join(map(str, blas.blas_threads())) or '?'} thread(s), "
          f"OpenBLAS kernels {'/'.join(blas.kernel_names()) or '?'}")
    datasets = load_data(args.dataset)

    start = time.perf_counter()
    model = convolutional_mlp.build_model(datasets)
    graph_s = time.perf_counter() - start
    first_train = timed(model.train_model, 0)
    first_valid = timed(model.validate_model, 0)
    first_test = timed(model.test_model, 0)
    print(f"compile: build {graph_s:.1f} s + first calls train {first_train:.1f} s, "
          f"validate {first_valid:.1f} s, test {first_test:.1f} s "
          f"= {graph_s + first_train + first_valid + first_test:.1f} s")

    peer = None
    if not args.no_torch:
        if torch_available():
            peer = TorchPeer(model, datasets, args.threads)
        else:
            print("torch not importable: timing PyTensor alone")

    n_train, n_valid, _ = model.n_batches
    times = {"train": [], "valid": [], "torch_train": [], "torch_valid": []}
    block = args.block
    # Take turns in blocks; a pause between turns lets the other side's
    # spinning threads go to sleep first.
    for start in range(0, args.warmup + args.rounds, block):
        count = min(block, args.warmup + args.rounds - start)
        keep = max(0, start + count - args.warmup) - max(0, start - args.warmup)
        train = [timed(model.train_model, (start + k + 1) % n_train) for k in range(count)]
        valid = [timed(model.validate_model, (start + k) % n_valid) for k in range(count)]
        times["train"] += train[count - keep:]
        times["valid"] += valid[count - keep:]
        if peer:
            time.sleep(0.3)
            times["torch_train"] += peer.run("train", (start + 1) % n_train, count)[count - keep:]
            times["torch_valid"] += peer.run("valid", start % n_valid, count)[count - keep:]
            time.sleep(0.3)
    if peer:
        peer.close()

    print(summary("pytensor train_model", times["train"]))
    print(summary("pytensor validate_model", times["valid"]))
    train_med = statistics.median(times["train"])
    valid_med = statistics.median(times["valid"])
    epoch = n_train * train_med + n_valid * valid_med
    print(f"pytensor epoch estimate: {epoch:.1f} s ({n_train} train + {n_valid} valid calls); "
          f"200 epochs: {200 * epoch / 60:.0f} min")
    if peer:
        print(summary("torch train step", times["torch_train"]))
        print(summary("torch validate step", times["torch_valid"]))
        ratio_t = train_med / statistics.median(times["torch_train"])
        ratio_v = valid_med / statistics.median(times["torch_valid"])
        print(f"ratio pytensor/torch: train {ratio_t:.2f}, validate {ratio_v:.2f}")


if __name__ == "__main__":
    main()
