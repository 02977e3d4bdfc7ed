"""Time the tutorial's LeNet epoch against PyTorch eager and torch.compile.

One epoch of the tutorial is 100 ``train_model`` calls (batch 500) and 20
``validate_model`` calls: the default LeNet (nkerns 20/50, float32) built by
``convolutional_mlp.build_model``, data in shared variables, minibatch by
index. The script times whole epochs of it (or, with ``--partial K``, K
training and K/5 validation calls scaled up to an epoch) for each
contestant in turn:

* the project: PyTensor in this process (default Numba mode, or ``--mode``);
* PyTorch eager and PyTorch ``torch.compile``, each in a child process of
  its own, from the same initial weights and data, with the same SGD step.

The contestants take turns epoch by epoch (their order rotating every
round), so all of them see the same machine load, and the report gives each
one's median, min and max epoch seconds, its steadiness (median / min: near
1 on a quiet machine), and the ratio project / best PyTorch (the target is
< 0.8), of the medians and round by round (each round's epochs ran minutes
apart at most, so a machine whose speed drifts moves both sides alike).
Compile times are reported and never timed into an epoch; both
PyTensor/Numba and inductor keep on-disk caches, so a second run compiles
faster (``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1`` times a cold torch.compile).

It also prints the machine (CPU, cores, AVX-512 or not, OpenBLAS kernels,
threads, versions) and measures the GEMM floor of this machine: the FLOPs of
an epoch's matrix products (convolutions as im2col products, dense layers),
the float32 GEMM peak of large square numpy products on the same number of
threads, so floor = epoch GFLOP / peak, and numpy's time for the products at
LeNet's own shapes. Every epoch time is also given as a multiple of the
floor, which tells how much is left to win on any machine.

Why separate processes: with two frameworks in one process, torch's OpenMP
threads and OpenBLAS's threads spin against each other on a 2-core machine
and both slow down 3-20x (measured), which says nothing about either.

Examples::

    python benchmarks/bench_lenet.py                         # 5 epochs, all peers
    python benchmarks/bench_lenet.py --threads 1 --epochs 10 --json run.json
    python benchmarks/bench_lenet.py --epochs 3 --partial 10 # quick look
    python benchmarks/bench_lenet.py --peers eager --mode CVM
    python benchmarks/bench_lenet.py --mode JAX --peers none # GPU with a CUDA jax
    python benchmarks/bench_lenet.py --avx2                  # an AVX2-only CPU, on an AVX-512 one

Compare only runs made on a quiet machine: the script prints the load
average and warns when the machine was busy or the epochs unsteady.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CODE = os.path.join(HERE, "..", "code")
sys.path.insert(0, CODE)

PEERS = ("eager", "compile")
PEER_NAMES = {"eager": "torch eager", "compile": "torch compile"}
TARGET = 0.8  # project / best PyTorch, issue #14
PAUSE_S = 0.3  # between turns, so the last one's spinning threads go to sleep


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Older options: --rounds N is --epochs N, --no-torch is --peers none.")
    parser.add_argument("--mode", default=None,
                        help="PyTensor mode: NUMBA (default), CVM (C linker), JAX")
    parser.add_argument("--epochs", "--rounds", dest="epochs", type=int, default=5,
                        help="timed rounds; each contestant runs one epoch per round (default 5)")
    parser.add_argument("--partial", type=int, default=None, metavar="K",
                        help="time only K train and K/5 validate calls per turn and scale them "
                             "to an epoch (quick runs; default: whole epochs)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed train and validate calls per contestant after compiling "
                             "(default 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for the project's kernels (Numba), for torch and for the "
                             "GEMM peak (default: all cores)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="PyTorch contestants, comma-separated from eager,compile; "
                             "'none' for the project alone (default eager,compile)")
    parser.add_argument("--no-torch", dest="peers", action="store_const", const="none",
                        help=argparse.SUPPRESS)
    parser.add_argument("--block", type=int, default=None, help=argparse.SUPPRESS)  # older option, unused
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode (default, max-autotune-no-cudagraphs, ...)")
    parser.add_argument("--avx2", action="store_true",
                        help="on an AVX-512 CPU, run every contestant on its AVX2 code (see AVX2_ONLY): "
                             "an AVX2-only machine, simulated fairly")
    parser.add_argument("--no-floor", action="store_true", help="skip the GEMM floor measurement")
    parser.add_argument("--json", metavar="PATH", help="also write every result to this JSON file")
    parser.add_argument("--dataset", default="mnist.pkl.gz", help="as for load_data")
    parser.add_argument("--torch-worker", metavar="NPZ", help=argparse.SUPPRESS)
    parser.add_argument("--peer-kind", choices=PEERS, default="eager", help=argparse.SUPPRESS)
    parser.add_argument("--gemm-worker", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if peers == ["none"]:
        peers = []
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        parser.error(f"--peers: unknown {','.join(unknown)} (choose from {','.join(PEERS)} or none)")
    args.peers = list(dict.fromkeys(peers))
    for name in ("epochs", "warmup", "partial", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            parser.error(f"--{name} must be {'>= 0' if name == 'warmup' else 'positive'}, got {value}")
    return args


# An AVX2-only CPU, simulated on an AVX-512 one for every contestant alike:
# OpenBLAS's Haswell kernels alone (OPENBLAS_CORETYPE=Haswell) handicap the
# project and numpy but not PyTorch, whose MKL and oneDNN keep their AVX-512
# code, and Numba would still compile for the host's AVX-512.
AVX2_ONLY = {
    "OPENBLAS_CORETYPE": "Haswell",      # OpenBLAS (numpy, SciPy: the project's GEMMs)
    "NUMBA_CPU_NAME": "haswell",         # the project's own kernels
    "ATEN_CPU_CAPABILITY": "avx2",       # PyTorch's own kernels, inductor's code
    "ONEDNN_MAX_CPU_ISA": "AVX2",        # PyTorch's convolutions
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",   # PyTorch's matrix products
    # inductor's cache does not tell its AVX-512 code from AVX2 code: a
    # cached AVX-512 graph came back under avx2 and failed (torch 2.13)
    "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1",
}


def set_threads(n):
    """Thread counts must be in the environment before numpy/BLAS load."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    float(result)  # forces JAX's asynchronous result to be ready
    return time.perf_counter() - start


def run_calls(fn, start, count, n_batches):
    """Seconds for ``count`` calls ``fn((start + j) % n_batches)``, each result
    read as the tutorial's loop reads it (a float)."""
    begin = time.perf_counter()
    for j in range(count):
        float(fn((start + j) % n_batches))
    return time.perf_counter() - begin


# ---------------------------------------------------------------- the GEMMs

def lenet_gemms(weight_shapes, batch_size=500, image=28, pool=2):
    """The matrix products of one LeNet step, from the layers' weight shapes.

    The convolutions count as their im2col products (the project's kernels,
    and the usual lowering): forward ``(filters, C*kh*kw) @ (C*kh*kw, B*oh*ow)``,
    filter gradient and input gradient of the same size. The first layer
    needs no input gradient (the images are not trained), so a training step
    has 2 + 3 conv products and 3 + 3 dense ones; validation only the 4
    forward products. Returns dicts ``name, m, k, n, train, valid`` (how
    many times per train / validate call); FLOPs = 2 m k n.
    """
    (f0, c0, kh0, kw0), _, (f1, c1, kh1, kw1), _, (n_in, hidden), _, (hidden3, n_out), _ = weight_shapes
    o0 = image - kh0 + 1
    o1 = o0 // pool - kh1 + 1
    k0, k1 = c0 * kh0 * kw0, c1 * kh1 * kw1
    p0, p1 = batch_size * o0 * o0, batch_size * o1 * o1
    if n_in != f1 * (o1 // pool) ** 2 or hidden3 != hidden:
        raise ValueError(f"weights {weight_shapes} are not the tutorial's LeNet")
    b = batch_size
    return [
        dict(name="conv0 forward", m=f0, k=k0, n=p0, train=1, valid=1),
        dict(name="conv0 filter grad", m=f0, k=p0, n=k0, train=1, valid=0),
        dict(name="conv1 forward", m=f1, k=k1, n=p1, train=1, valid=1),
        dict(name="conv1 filter grad", m=f1, k=p1, n=k1, train=1, valid=0),
        dict(name="conv1 input grad", m=k1, k=f1, n=p1, train=1, valid=0),
        dict(name="hidden forward", m=b, k=n_in, n=hidden, train=1, valid=1),
        dict(name="hidden weight grad", m=n_in, k=b, n=hidden, train=1, valid=0),
        dict(name="hidden input grad", m=b, k=hidden, n=n_in, train=1, valid=0),
        dict(name="logreg forward", m=b, k=hidden, n=n_out, train=1, valid=1),
        dict(name="logreg weight grad", m=hidden, k=b, n=n_out, train=1, valid=0),
        dict(name="logreg input grad", m=b, k=n_out, n=hidden, train=1, valid=0),
    ]


def gemm_flops(gemms, what):
    return sum(2 * g["m"] * g["k"] * g["n"] * g[what] for g in gemms)


def load_blas_probe():
    """``pytensor_nnet/blas.py`` alone, without the package's ``__init__``
    (which sets every OpenBLAS to one thread)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_bench_blas_probe", os.path.join(CODE, "pytensor_nnet", "blas.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_of(fn, reps, min_total_s=0.3, max_reps=200):
    """Fastest of at least ``reps`` runs, more for short products (until
    ``min_total_s`` has passed), after one untimed run."""
    fn()  # warm: first touch of the output, BLAS buffers, threads
    best, total, done = float("inf"), 0.0, 0
    while done < reps or (total < min_total_s and done < max_reps):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, total, done = min(best, elapsed), total + elapsed, done + 1
    return best


def gemm_worker(spec_json):
    """Child process, numpy only and OpenBLAS on the threads the environment
    says: SGEMM peak and the LeNet products' times; prints one JSON line."""
    import numpy as np

    spec = json.loads(spec_json)
    rng = np.random.default_rng(0)
    size, reps = spec["peak_size"], spec["reps"]
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty((size, size), np.float32)
    peak_s = best_of(lambda: np.matmul(a, b, out=c), reps)
    result = {"peak_size": size, "peak_gflops": 2 * size ** 3 / peak_s / 1e9, "shapes": []}
    for g in spec["gemms"]:
        a = rng.standard_normal((g["m"], g["k"]), dtype=np.float32)
        b = rng.standard_normal((g["k"], g["n"]), dtype=np.float32)
        c = np.empty((g["m"], g["n"]), np.float32)
        seconds = best_of(lambda: np.matmul(a, b, out=c), reps)
        result["shapes"].append(dict(g, seconds=seconds,
                                     gflops=2 * g["m"] * g["k"] * g["n"] / seconds / 1e9))
    try:
        blas = load_blas_probe()
        result["blas_threads"] = blas.blas_threads()
        result["openblas_kernels"] = blas.kernel_names()
    except Exception as err:  # a probe only: the numbers above stand
        result["blas_probe_error"] = f"{type(err).__name__}: {err}"
    print(json.dumps(result), flush=True)


def measure_floor(gemms, threads, n_train, n_valid, peak_size=2048, reps=5):
    """Run :func:`gemm_worker` in a child with ``threads`` BLAS threads."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    spec = json.dumps({"gemms": gemms, "peak_size": peak_size, "reps": reps})
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--gemm-worker", spec],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
    floor = json.loads(proc.stdout.strip().splitlines()[-1])
    epoch_flops = n_train * gemm_flops(gemms, "train") + n_valid * gemm_flops(gemms, "valid")
    floor.update(
        threads=threads,
        train_step_gflop=gemm_flops(gemms, "train") / 1e9,
        valid_step_gflop=gemm_flops(gemms, "valid") / 1e9,
        epoch_gflop=epoch_flops / 1e9,
        floor_s=epoch_flops / 1e9 / floor["peak_gflops"],
        shapes_epoch_s=sum(s["seconds"] * (n_train * s["train"] + n_valid * s["valid"])
                           for s in floor["shapes"]),
    )
    floor["reps"] = reps
    return floor


# ---------------------------------------------------------------- the machine

def _lscpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def machine_info():
    """CPU model, cores, vector extensions, OpenBLAS settings, load: no
    heavy imports (torch is never imported in this process)."""
    info = {"platform": platform.platform(), "python": platform.python_version()}
    model, flags, cores = None, set(), set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            physical = core = None
            for line in cpuinfo:
                key, _, value = (s.strip() for s in line.partition(":"))
                if key == "model name" and model is None:
                    model = value
                elif key == "flags" and not flags:
                    flags = set(value.split())
                elif key == "physical id":
                    physical = value
                elif key == "core id":
                    core = value
                elif not key and core is not None:
                    cores.add((physical, core))
                    physical = core = None
            if core is not None:
                cores.add((physical, core))
    except OSError:
        pass
    if model is None or not flags:
        lscpu = _lscpu()
        model = model or lscpu.get("Model name")
        flags = flags or set(lscpu.get("Flags", "").split())
    info["cpu_model"] = model or platform.processor() or "?"
    info["logical_cpus"] = os.cpu_count()
    info["usable_cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["physical_cores"] = len(cores) or None
    info["avx512f"] = "avx512f" in flags if flags else None
    info["avx2"] = "avx2" in flags if flags else None
    info["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE")
    info["isa_limits"] = {k: os.environ[k] for k in AVX2_ONLY if k in os.environ}
    info["versions"] = versions()
    return info


def versions():
    from importlib import metadata

    found = {}
    for name in ("pytensor", "numba", "numpy", "scipy", "torch", "jax"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


# ---------------------------------------------------------------- PyTorch

def torch_model(weights, data, compile_mode=None, batch_size=500, learning_rate=0.1):
    """PyTorch twin of the tutorial's LeNet, from the same initial weights.

    ``weights``: the PyTensor parameters in ``layer0.W, layer0.b, ..., layer3.b``
    order; ``data``: ``(train_x, train_y, valid_x, valid_y)`` numpy arrays.
    ``compile_mode``: None for eager, else the ``torch.compile`` mode that
    compiles the cost (forward and, through AOTAutograd, backward) and the
    validation error. The SGD step ``p -= learning_rate * g`` is the same in
    both. Returns ``(train_step(i), validate_step(i))``.
    """
    import torch
    import torch.nn.functional as F

    w0, b0, w1, b1, w2, b2, w3, b3 = weights
    # conv2d flips the filters (a true convolution); torch correlates
    w0, w1 = w0[:, :, ::-1, ::-1], w1[:, :, ::-1, ::-1]
    params = [torch.tensor(v.copy(), requires_grad=True) for v in (w0, b0, w1, b1, w2, b2, w3, b3)]
    train_x, train_y, valid_x, valid_y = (torch.from_numpy(a) for a in data)
    train_y, valid_y = train_y.long(), valid_y.long()

    def forward(x, w0, b0, w1, b1, w2, b2, w3, b3):
        h = x.reshape(-1, 1, 28, 28)
        h = torch.tanh(F.max_pool2d(F.conv2d(h, w0), 2) + b0.view(1, -1, 1, 1))
        h = torch.tanh(F.max_pool2d(F.conv2d(h, w1), 2) + b1.view(1, -1, 1, 1))
        h = torch.tanh(h.flatten(1) @ w2 + b2)
        return h @ w3 + b3

    def cost_fn(x, y, *params):
        return F.cross_entropy(forward(x, *params), y)

    def errors_fn(x, y, *params):
        return (forward(x, *params).argmax(1) != y).double().mean()

    if compile_mode is not None:
        options = {} if compile_mode == "default" else {"mode": compile_mode}
        cost_fn = torch.compile(cost_fn, **options)
        errors_fn = torch.compile(errors_fn, **options)

    def train_step(i):
        sl = slice(i * batch_size, (i + 1) * batch_size)
        cost = cost_fn(train_x[sl], train_y[sl], *params)
        grads = torch.autograd.grad(cost, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= learning_rate * g
        return cost.detach()

    def validate_step(i):
        sl = slice(i * batch_size, (i + 1) * batch_size)
        with torch.no_grad():
            return errors_fn(valid_x[sl], valid_y[sl], *params)

    return train_step, validate_step


def torch_worker(npz_path, threads, kind, compile_mode):
    """Child process: answers one JSON line per command line on stdin
    ("warmup N", "turn TRAIN_START TRAIN_COUNT VALID_START VALID_COUNT")."""
    # The protocol keeps the real stdout; anything else written to fd 1
    # (compiler chatter, inductor's workers) goes to stderr.
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)
    with np.load(npz_path) as saved:
        weights = [saved[f"w{i}"] for i in range(8)]
        data = [saved[k] for k in ("train_x", "train_y", "valid_x", "valid_y")]
    n_train, n_valid = len(data[0]) // 500, len(data[2]) // 500
    train_step, validate_step = torch_model(weights, data, compile_mode if kind == "compile" else None)
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        capability = None
    reply({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "interop_threads": torch.get_num_interop_threads(), "cpu_capability": capability,
           "mkldnn": torch.backends.mkldnn.is_available(), "mkl": torch.backends.mkl.is_available()})
    for line in sys.stdin:
        words = line.split()
        try:
            if words[0] == "warmup":
                count = int(words[1])
                start = time.perf_counter()
                first_cost = float(train_step(0))  # the cost from the initial weights
                first_train_s = time.perf_counter() - start  # torch.compile compiles here
                second_train_s = timed(train_step, 1 % n_train)  # and may compile again
                first_valid_s = timed(validate_step, 0)
                for k in range(count):
                    float(train_step((2 + k) % n_train))
                    float(validate_step((1 + k) % n_valid))
                reply({"first_cost": first_cost, "first_train_s": first_train_s,
                       "second_train_s": second_train_s, "first_valid_s": first_valid_s})
            elif words[0] == "turn":
                ts, tn, vs, vn = map(int, words[1:])
                reply({"train_s": run_calls(train_step, ts, tn, n_train),
                       "valid_s": run_calls(validate_step, vs, vn, n_valid)})
            else:
                reply({"error": f"unknown command {line.strip()!r}"})
        except Exception as err:
            message = str(err).strip().splitlines()
            reply({"error": f"{type(err).__name__}: {message[0] if message else ''}"})


class TorchPeer:
    """A torch worker process, fed the same weights and data as the project."""

    def __init__(self, kind, npz_path, threads, compile_mode):
        self.kind, self.name = kind, PEER_NAMES[kind]
        cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", npz_path,
               "--peer-kind", kind, "--compile-mode", compile_mode]
        if threads:
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()  # waits until torch is ready

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker ended (exit {self.proc.wait()}); see its stderr above")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def warmup(self, count):
        """First calls (torch.compile compiles here), timed apart; then
        ``count`` untimed calls. Returns the worker's reply plus compile_s."""
        start = time.perf_counter()
        reply = self.ask(f"warmup {count}")
        total = time.perf_counter() - start
        reply["warmup_total_s"] = total
        return reply

    def turn(self, ts, tn, vs, vn):
        reply = self.ask(f"turn {ts} {tn} {vs} {vn}")
        return reply["train_s"], reply["valid_s"]

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def torch_available():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def save_peer_data(model, datasets):
    """The initial weights and the train/valid data, for the torch workers."""
    import numpy as np

    (train_x, train_y), (valid_x, valid_y), _ = [
        (x.get_value(borrow=True), y.owner.inputs[0].get_value(borrow=True)) for x, y in datasets
    ]
    weights = [p.get_value() for layer in model.layers for p in (layer.W, layer.b)]
    tmp = tempfile.NamedTemporaryFile(suffix=".npz")
    np.savez(tmp.name, train_x=np.asarray(train_x), train_y=np.asarray(train_y),
             valid_x=np.asarray(valid_x), valid_y=np.asarray(valid_y),
             **{f"w{i}": np.asarray(w) for i, w in enumerate(weights)})
    return tmp, [tuple(w.shape) for w in weights]


# ---------------------------------------------------------------- report

def stats(epochs):
    med, lo, hi = statistics.median(epochs), min(epochs), max(epochs)
    return {"median_s": med, "min_s": lo, "max_s": hi, "steadiness": med / lo}


def ratios_by_round(results, project_name, peer_names):
    """Round by round, the project's epoch over the best PyTorch epoch of the
    same round. The contestants of a round ran minutes apart at most, so a
    machine whose speed drifts over a run (a virtual machine's neighbours)
    moves both sides of each ratio alike."""
    rounds = zip(results[project_name]["epochs_s"],
                 *(results[name]["epochs_s"] for name in peer_names))
    return [project / min(peers) for project, *peers in rounds]


def print_machine(machine, project, peers_info, floor):
    v = machine["versions"]
    print(f"machine: {machine['cpu_model']}, {machine['usable_cpus']} usable of "
          f"{machine['logical_cpus']} logical CPUs"
          + (f" ({machine['physical_cores']} physical cores)" if machine["physical_cores"] else "")
          + f", AVX-512 {'yes' if machine['avx512f'] else 'no' if machine['avx512f'] is False else '?'}"
          f" (avx512f), AVX2 {'yes' if machine['avx2'] else 'no'}")
    if machine["isa_limits"]:
        print("instruction sets limited by: "
              + ", ".join(f"{k}={v}" for k, v in machine["isa_limits"].items()))
    print(f"OpenBLAS: kernels {'/'.join(project['openblas_kernels']) or '?'}, "
          f"OPENBLAS_CORETYPE={machine['openblas_coretype'] or '(unset)'}, "
          f"threads in this process {'/'.join(map(str, project['blas_threads'])) or '?'}")
    print(f"threads: project kernels {project['kernel_threads']} (Numba {project['threading_layer']})"
          + "".join(f", {PEER_NAMES[k]} {i['threads']}" for k, i in peers_info.items())
          + (f", GEMM floor {floor['threads']}" if floor else ""))
    print("versions: " + ", ".join(f"{k} {v[k]}" for k in ("pytensor", "numba", "numpy", "torch")
                                   if v.get(k)) + f", python {machine['python']}")
    for kind, i in peers_info.items():
        print(f"{PEER_NAMES[kind]}: cpu capability {i.get('cpu_capability')}, "
              f"mkldnn {i.get('mkldnn')}, mkl {i.get('mkl')}")


def print_floor(floor, n_train, n_valid):
    print(f"GEMM floor ({floor['threads']} thread(s), float32 numpy, fastest of "
          f"{floor['reps']}+ runs each):")
    print(f"  epoch {floor['epoch_gflop']:.1f} GFLOP = {n_train} train steps x "
          f"{floor['train_step_gflop']:.3f} + {n_valid} validate steps x {floor['valid_step_gflop']:.3f}")
    print(f"  SGEMM peak {floor['peak_gflops']:.1f} GFLOP/s ({floor['peak_size']}^2 products); "
          f"floor = {floor['floor_s']:.2f} s per epoch")
    print(f"  numpy at LeNet's own shapes: {floor['shapes_epoch_s']:.2f} s per epoch "
          f"({floor['epoch_gflop'] / floor['shapes_epoch_s']:.1f} GFLOP/s)")
    for s in floor["shapes"]:
        print(f"    {s['name']:20s} {s['m']:>6d} x {s['k']:>6d} x {s['n']:>6d}  "
              f"{s['seconds'] * 1e3:7.2f} ms  {s['gflops']:6.1f} GFLOP/s  "
              f"(x{s['train']} train, x{s['valid']} valid)")
    if "openblas_kernels" in floor:
        print(f"  (numpy/scipy OpenBLAS kernels there: {'/'.join(floor['openblas_kernels']) or '?'}, "
              f"threads {'/'.join(map(str, floor.get('blas_threads', []))) or '?'})")


def print_results(results, floor, partial_note):
    print(f"epoch seconds ({partial_note}):")
    header = (f"  {'contestant':22s} {'median':>8s} {'min':>8s} {'max':>8s} {'med/min':>8s}"
              f" {'train ms':>9s} {'valid ms':>9s}")
    if floor:
        header += f" {'x floor':>8s} {'x shapes':>9s}"
    print(header)
    for name, r in results.items():
        line = (f"  {name:22s} {r['median_s']:8.2f} {r['min_s']:8.2f} {r['max_s']:8.2f}"
                f" {r['steadiness']:8.2f} {r['train_call_ms']:9.1f} {r['valid_call_ms']:9.1f}")
        if floor:
            line += f" {r['x_floor']:8.2f} {r['x_shapes']:9.2f}"
        print(line)


# ---------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    if args.avx2:
        os.environ.update(AVX2_ONLY)  # before numpy loads; the children inherit it
    if args.gemm_worker:
        return gemm_worker(args.gemm_worker)
    if args.torch_worker:
        return torch_worker(args.torch_worker, args.threads, args.peer_kind, args.compile_mode)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "floatX" not in flags:
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, "floatX=float32") if f)

    load_start = load_average()
    machine = machine_info()

    import numba
    import pytensor

    import convolutional_mlp
    import pytensor_nnet
    from mnist_io import load_data
    from pytensor_nnet import blas

    if args.mode:
        pytensor.config.mode = args.mode
    mode = mode_name(pytensor.config.mode)
    project = {
        "mode": mode, "floatX": pytensor.config.floatX,
        "kernel_threads": pytensor_nnet.get_num_threads(),
        "threading_layer": numba.threading_layer(),
        "blas_threads": blas.blas_threads(), "openblas_kernels": blas.kernel_names(),
    }
    project_name = f"pytensor ({mode})"
    print(f"pytensor {pytensor.__version__}, mode {mode}, floatX {project['floatX']}, "
          f"kernel threads {project['kernel_threads']} (Numba {project['threading_layer']}), "
          f"BLAS {'/'.join(map(str, project['blas_threads'])) or '?'} thread(s), "
          f"OpenBLAS kernels {'/'.join(project['openblas_kernels']) or '?'}")
    if load_start:
        print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} "
              f"({machine['usable_cpus']} usable CPUs)")
    datasets = load_data(args.dataset)

    start = time.perf_counter()
    model = convolutional_mlp.build_model(datasets)
    graph_s = time.perf_counter() - start
    n_train, n_valid, _ = model.n_batches
    peers = []
    if args.peers and not torch_available():
        print("torch not importable: timing the project alone")
        args.peers = []
    peer_file, weight_shapes = save_peer_data(model, datasets)  # before any step changes the weights

    start = time.perf_counter()
    first_cost = float(model.train_model(0))
    first_train = time.perf_counter() - start
    first_valid = timed(model.validate_model, 0)
    first_test = timed(model.test_model, 0)
    project["compile_s"] = {"build": graph_s, "first_train": first_train, "first_validate": first_valid,
                            "first_test": first_test,
                            "total": graph_s + first_train + first_valid + first_test}
    print(f"compile: build {graph_s:.1f} s + first calls train {first_train:.1f} s, "
          f"validate {first_valid:.1f} s, test {first_test:.1f} s "
          f"= {project['compile_s']['total']:.1f} s")
    for k in range(args.warmup):
        model.train_model((1 + k) % n_train)
        model.validate_model((1 + k) % n_valid)

    # The GEMM floor, in a child process with its own BLAS threads.
    floor = None
    gemms = lenet_gemms(weight_shapes)
    gemm_threads = args.threads or project["kernel_threads"]
    if args.no_floor:
        pass
    elif mode == "JAX" and not jax_on_cpu():
        print("GEMM floor: skipped (JAX mode on an accelerator; the floor is a CPU one)")
    else:
        try:
            floor = measure_floor(gemms, gemm_threads, n_train, n_valid)
        except Exception as err:
            print(f"GEMM floor: measurement failed ({err})")

    # The PyTorch peers, started one at a time so that their compiling
    # does not overlap anything else.
    peers_info, warm = {}, {}
    for kind in args.peers:
        try:
            peer = TorchPeer(kind, peer_file.name, args.threads, args.compile_mode)
        except Exception as err:
            print(f"{PEER_NAMES[kind]}: could not start ({err}); left out")
            continue
        try:
            reply = peer.warmup(args.warmup)
        except Exception as err:
            peer.close()
            why = err
            if kind == "compile":
                why = f"{err}; torch.compile on the CPU needs inductor and a C++ compiler (g++)"
            print(f"{PEER_NAMES[kind]}: warm-up failed ({why}); left out")
            continue
        peers.append(peer)
        peers_info[kind] = dict(peer.info)
        warm[kind] = reply
        label = "compile + first calls" if kind == "compile" else "first calls"
        print(f"{peer.name}: {label} {reply['warmup_total_s']:.1f} s (first train call "
              f"{reply['first_train_s']:.1f} s, second {reply['second_train_s']:.2f} s, first validate "
              f"{reply['first_valid_s']:.1f} s, then {args.warmup} warm-up calls each; not timed)")
    if args.peers:
        costs = ", ".join([f"project {first_cost:.6f}"]
                          + [f"{PEER_NAMES[k]} {warm[k]['first_cost']:.6f}" for k in warm])
        print(f"first training cost from the same initial weights: {costs}")

    # Interleaved rounds: each contestant runs one epoch (or its partial
    # block) per round; the order rotates so nobody always follows the same one.
    if args.partial:
        k_train = min(args.partial, n_train)
        k_valid = max(1, round(k_train * n_valid / n_train))
        partial_note = (f"{args.epochs} rounds, each turn {k_train} train + {k_valid} validate calls "
                        f"scaled to {n_train} + {n_valid}")
    else:
        k_train, k_valid = n_train, n_valid
        partial_note = f"{args.epochs} rounds of whole epochs, {n_train} train + {n_valid} validate calls"

    def project_turn(ts, tn, vs, vn):
        return (run_calls(model.train_model, ts, tn, n_train),
                run_calls(model.validate_model, vs, vn, n_valid))

    contestants = [(project_name, project_turn)] + [(p.name, p.turn) for p in peers]
    blocks = {name: {"train_s": [], "valid_s": []} for name, _ in contestants}
    print(f"timing: {partial_note} ...", flush=True)
    try:
        for r in range(args.epochs):
            ts, vs = (r * k_train) % n_train, (r * k_valid) % n_valid
            shift = r % len(contestants)
            for name, turn in contestants[shift:] + contestants[:shift]:
                if len(contestants) > 1:
                    time.sleep(PAUSE_S)
                train_s, valid_s = turn(ts, k_train, vs, k_valid)
                blocks[name]["train_s"].append(train_s)
                blocks[name]["valid_s"].append(valid_s)
    finally:
        for peer in peers:
            peer.close()
        peer_file.close()
    load_end = load_average()

    results = {}
    for name, b in blocks.items():
        epochs = [t * n_train / k_train + v * n_valid / k_valid
                  for t, v in zip(b["train_s"], b["valid_s"])]
        r = {"epochs_s": epochs, **stats(epochs), "train_block_s": b["train_s"],
             "valid_block_s": b["valid_s"],
             "train_call_ms": statistics.median(b["train_s"]) / k_train * 1e3,
             "valid_call_ms": statistics.median(b["valid_s"]) / k_valid * 1e3}
        if floor:
            r["x_floor"] = r["median_s"] / floor["floor_s"]
            r["x_shapes"] = r["median_s"] / floor["shapes_epoch_s"]
        results[name] = r

    print()
    print_machine(machine, project, peers_info, floor)
    if floor:
        print_floor(floor, n_train, n_valid)
    print(f"compile (not timed): {project_name} {project['compile_s']['total']:.1f} s"
          + "".join(f", {PEER_NAMES[k]} {w['warmup_total_s']:.1f} s" for k, w in warm.items()))
    print_results(results, floor, partial_note)
    ratio = best = by_round = None
    peer_results = {p.name: results[p.name] for p in peers}
    if peer_results:
        best = min(peer_results, key=lambda n: peer_results[n]["median_s"])
        ratio = results[project_name]["median_s"] / peer_results[best]["median_s"]
        print(f"ratio project / best PyTorch ({best}): {ratio:.2f} "
              f"({'meets' if ratio < TARGET else 'misses'} the target < {TARGET})")
        for name, r in peer_results.items():
            print(f"  project / {name}: {results[project_name]['median_s'] / r['median_s']:.2f}")
        by_round = ratios_by_round(results, project_name, list(peer_results))
        print(f"  round by round, project / that round's best PyTorch: median "
              f"{statistics.median(by_round):.2f} ({min(by_round):.2f}-{max(by_round):.2f})")
    print(f"200 epochs of {project_name}: {200 * results[project_name]['median_s'] / 60:.0f} min")

    warnings = []
    if load_start and load_start[0] > 0.25 * machine["usable_cpus"]:
        warnings.append(f"load average {load_start[0]:.2f} at start on {machine['usable_cpus']} CPUs: "
                        "other work was running")
    unsteady = [n for n, r in results.items() if r["steadiness"] > 1.10]
    if unsteady and args.epochs > 1:
        warnings.append(f"unsteady (median/min > 1.10): {', '.join(unsteady)}")
    if args.epochs < 5:
        warnings.append(f"only {args.epochs} round(s): medians of few epochs")
    if args.partial:
        warnings.append("partial epochs scaled up: for quick looks, not for records")
    if load_end:
        print(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    for warning in warnings:
        print(f"WARNING: {warning}")

    if args.json:
        record = {
            "argv": sys.argv[1:] if argv is None else list(argv),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine, "project": project, "peers": peers_info, "peer_warmup": warm,
            "config": {"epochs": args.epochs, "partial": args.partial, "k_train": k_train,
                       "k_valid": k_valid, "n_train": n_train, "n_valid": n_valid,
                       "warmup": args.warmup, "threads": args.threads,
                       "compile_mode": args.compile_mode, "batch_size": 500,
                       "weight_shapes": weight_shapes},
            "first_cost": {"project": first_cost, **{PEER_NAMES[k]: w["first_cost"] for k, w in warm.items()}},
            "gemms": gemms, "floor": floor, "results": results,
            "ratio_project_best": ratio, "best_peer": best, "target": TARGET,
            "ratio_by_round": by_round,
            "load_average": {"start": load_start, "end": load_end}, "warnings": warnings,
        }
        with open(args.json, "w") as out:
            json.dump(record, out, indent=1)
        print(f"results written to {args.json}")
    return results


def mode_name(mode):
    """"NUMBA", "JAX", "CVM", ... for a PyTensor mode (the default one is
    called "Mode" and links with Numba)."""
    if isinstance(mode, str) and mode != "Mode":
        return mode.upper()
    try:
        from pytensor.compile.mode import get_mode

        linker = type(get_mode(mode).linker).__name__
    except Exception:
        return str(mode)
    return {"NumbaLinker": "NUMBA", "NumbaNodeLinker": "NUMBA", "JAXLinker": "JAX",
            "VMLinker": "CVM", "CLinker": "C", "PerformLinker": "PY"}.get(linker, linker)


def jax_on_cpu():
    try:
        import jax

        return jax.default_backend() == "cpu"
    except Exception:
        return True


if __name__ == "__main__":
    main()
