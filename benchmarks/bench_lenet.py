"""Time the tutorial's LeNet training and validation steps, against PyTorch.

Builds the model with ``convolutional_mlp.build_model`` (the tutorial's own
graph: batch 500, nkerns 20/50, float32, data in shared variables, minibatch
by index), reports the compile time of the functions, then times one
``train_model(i)`` call per round. When ``torch`` is importable the same
model (same initial weights, same SGD step) runs in PyTorch eager in the same
process, interleaved call by call, so both see the same machine load; the
ratio PyTensor / PyTorch is printed at the end (< 1 means PyTensor is faster).

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
                        help="BLAS / torch threads (default: leave as is)")
    parser.add_argument("--dataset", default="mnist.pkl.gz", help="as for load_data")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
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


def torch_peer(model, datasets, batch_size=500, learning_rate=0.1):
    """PyTorch eager twin of the compiled model, starting from its weights.

    Returns (train_step(i), validate_step(i)).
    """
    import torch
    import torch.nn.functional as F

    def tensor(shared):
        return torch.tensor(shared.get_value(), requires_grad=True)

    layer0, layer1, layer2, layer3 = model.layers
    # conv2d flips the filters (a true convolution); torch correlates
    w0 = torch.tensor(layer0.W.get_value()[:, :, ::-1, ::-1].copy(), requires_grad=True)
    w1 = torch.tensor(layer1.W.get_value()[:, :, ::-1, ::-1].copy(), requires_grad=True)
    b0, b1 = tensor(layer0.b), tensor(layer1.b)
    w2, b2, w3, b3 = tensor(layer2.W), tensor(layer2.b), tensor(layer3.W), tensor(layer3.b)
    params = [w0, b0, w1, b1, w2, b2, w3, b3]
    (train_x, train_y), (valid_x, valid_y), _ = [
        (torch.from_numpy(x.get_value(borrow=True)), torch.from_numpy(y.owner.inputs[0].get_value(borrow=True)).long())
        for x, y in datasets
    ]

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


def summary(name, seconds):
    ms = [s * 1e3 for s in seconds]
    return f"{name:28s} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f}   max {max(ms):8.1f}"


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "floatX" not in flags:
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, "floatX=float32") if f)

    import pytensor

    import convolutional_mlp
    from mnist_io import load_data

    if args.mode:
        pytensor.config.mode = args.mode
    print(f"pytensor {pytensor.__version__}, mode {pytensor.config.mode}, floatX {pytensor.config.floatX}, "
          f"threads {args.threads or 'default'}")
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
        try:
            import torch
            if args.threads:
                torch.set_num_threads(args.threads)
            peer = torch_peer(model, datasets)
        except ImportError:
            print("torch not importable: timing PyTensor alone")

    n_train, n_valid, _ = model.n_batches
    times = {"train": [], "valid": [], "torch_train": [], "torch_valid": []}
    for r in range(args.warmup + args.rounds):
        i = (r + 1) % n_train
        t = timed(model.train_model, i)
        tt = timed(peer[0], i) if peer else None
        v = timed(model.validate_model, r % n_valid)
        tv = timed(peer[1], r % n_valid) if peer else None
        if r >= args.warmup:
            times["train"].append(t)
            times["valid"].append(v)
            if peer:
                times["torch_train"].append(tt)
                times["torch_valid"].append(tv)

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
