#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# PyTorch twin of `lowbit train` for bench/trainer-vs-pytorch: the same models
# (Caffe LeNet-5 20C5-MP2-50C5-MP2-500FC, LeNet-5 32C5-MP2-64C5-MP2-512FC,
# MLP 784-300-100-10), the same data (Fashion-MNIST IDX, normalised by the
# training-set mean/std), SGD with momentum, batch-mean cross-entropy.
# Reference: PyTorch 1.13 defaults (nn.Conv2d/nn.Linear init, optim.SGD).
#
# Run with Debian's interpreter (/usr/bin/python3, package python3-torch).
# Prints one line per epoch and, last, one machine-readable line:
#   RESULT key=value ...
# with median_samples_per_s (training loop only, median over epochs),
# test_acc (fraction, after the last epoch) and peak_rss_mib.
import argparse
import os
import sys


def parse_args(argv):
	p = argparse.ArgumentParser(description="Train a lowbit benchmark model in PyTorch.")
	p.add_argument("--model", default="lenet5-caffe", choices=["lenet5-caffe", "lenet5", "mlp"])
	p.add_argument("--epochs", type=int, default=3)
	p.add_argument("--threads", type=int, default=1)
	p.add_argument("--batch", type=int, default=64)
	p.add_argument("--eval-batch", type=int, default=1000)
	p.add_argument("--lr", type=float, default=0.02)
	p.add_argument("--momentum", type=float, default=0.9)
	p.add_argument("--seed", type=int, default=1)
	p.add_argument("--train-limit", type=int, default=0, help="use only the first N training samples (0 = all)")
	p.add_argument("--test-limit", type=int, default=0, help="use only the first N test samples (0 = all)")
	p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
	p.add_argument("--no-probe", action="store_true", help="skip the profiler probe of the conv/linear kernels")
	a = p.parse_args(argv)
	if a.epochs < 1 or a.threads < 1 or a.batch < 1 or a.eval_batch < 1:
		p.error("--epochs, --threads, --batch and --eval-batch must be >= 1")
	return a


args = parse_args(sys.argv[1:])
# Thread counts must be in the environment before torch (libgomp, OpenBLAS) loads.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
	os.environ[var] = str(args.threads)

import ctypes  # noqa: E402
import gzip  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def read_idx(path, want_magic, want_rank):
	"""Read a (gzipped) IDX file of uint8 into a numpy array, checking magic and size."""
	with open(path, "rb") as f:
		raw = f.read()
	if raw[:2] == b"\x1f\x8b":
		raw = gzip.decompress(raw)
	if len(raw) < 4:
		raise SystemExit(f"{path}: too short for an IDX header")
	magic = int.from_bytes(raw[0:4], "big")
	if magic != want_magic:
		raise SystemExit(f"{path}: IDX magic 0x{magic:08x}, expected 0x{want_magic:08x}")
	dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(want_rank)]
	off = 4 + 4 * want_rank
	n = int(np.prod(dims))
	if len(raw) - off != n:
		raise SystemExit(f"{path}: {len(raw) - off} data bytes, expected {n} for shape {dims}")
	return np.frombuffer(raw, dtype=np.uint8, offset=off).reshape(dims)


def load_split(d, prefix, limit):
	x = read_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte.gz"), 0x00000803, 3)
	y = read_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte.gz"), 0x00000801, 1)
	if x.shape[0] != y.shape[0]:
		raise SystemExit(f"{d}: {prefix} images ({x.shape[0]}) and labels ({y.shape[0]}) differ")
	if limit:
		x, y = x[:limit], y[:limit]
	return x, y


class LeNet5Caffe(nn.Module):
	"""20C5-MP2-50C5-MP2-500FC-10 (valid convolutions)."""

	def __init__(self):
		super().__init__()
		self.conv1 = nn.Conv2d(1, 20, 5)
		self.conv2 = nn.Conv2d(20, 50, 5)
		self.fc1 = nn.Linear(50 * 4 * 4, 500)
		self.fc2 = nn.Linear(500, 10)

	def forward(self, x):
		x = F.max_pool2d(F.relu(self.conv1(x)), 2)
		x = F.max_pool2d(F.relu(self.conv2(x)), 2)
		x = F.relu(self.fc1(torch.flatten(x, 1)))
		return self.fc2(x)


class LeNet5(nn.Module):
	"""32C5-MP2-64C5-MP2-512FC-10 (valid convolutions)."""

	def __init__(self):
		super().__init__()
		self.conv1 = nn.Conv2d(1, 32, 5)
		self.conv2 = nn.Conv2d(32, 64, 5)
		self.fc1 = nn.Linear(64 * 4 * 4, 512)
		self.fc2 = nn.Linear(512, 10)

	def forward(self, x):
		x = F.max_pool2d(F.relu(self.conv1(x)), 2)
		x = F.max_pool2d(F.relu(self.conv2(x)), 2)
		x = F.relu(self.fc1(torch.flatten(x, 1)))
		return self.fc2(x)


class MLP(nn.Module):
	"""784-300-100-10 with ReLU."""

	def __init__(self):
		super().__init__()
		self.fc1 = nn.Linear(784, 300)
		self.fc2 = nn.Linear(300, 100)
		self.fc3 = nn.Linear(100, 10)

	def forward(self, x):
		x = torch.flatten(x, 1)
		x = F.relu(self.fc1(x))
		x = F.relu(self.fc2(x))
		return self.fc3(x)


MODELS = {"lenet5-caffe": LeNet5Caffe, "lenet5": LeNet5, "mlp": MLP}


def openblas_info():
	"""Core name, config and thread count of the OpenBLAS loaded into this
	process (torch links libblas.so.3, which Debian may point at OpenBLAS)."""
	libs = set()
	try:
		with open("/proc/self/maps") as f:
			for line in f:
				path = line.split()[-1]
				base = os.path.basename(path)
				if path.startswith("/") and ("openblas" in base or base.startswith("libblas.so")):
					libs.add(path)
	except OSError:
		pass
	for path in sorted(libs, key=lambda s: "openblas" not in os.path.basename(s)):
		try:
			lib = ctypes.CDLL(path)
			lib.openblas_get_corename.restype = ctypes.c_char_p
			lib.openblas_get_config.restype = ctypes.c_char_p
			return {"lib": path,
				"corename": lib.openblas_get_corename().decode(),
				"config": lib.openblas_get_config().decode(),
				"threads": lib.openblas_get_num_threads()}
		except (OSError, AttributeError):
			continue
	return {"lib": ",".join(sorted(libs)) or "none", "corename": "not-openblas", "config": "", "threads": 0}


def probe_kernels(model, x, y):
	"""Names of the ATen kernels one forward+backward step uses for the conv
	and linear layers (mkldnn_convolution = oneDNN, addmm/mm = BLAS sgemm,
	slow_conv2d / thnn_conv2d = im2col + BLAS)."""
	from torch.autograd import profiler
	with profiler.profile() as prof:
		loss = F.cross_entropy(model(x), y)
		loss.backward()
	model.zero_grad(set_to_none=True)
	names = {e.name for e in prof.function_events}
	keep = ("conv", "addmm", "aten::mm", "mkldnn", "matmul")
	return sorted(n.replace("aten::", "") for n in names if any(k in n for k in keep))


def evaluate(model, x, y, eval_batch):
	model.eval()
	correct = 0
	with torch.no_grad():
		for i in range(0, x.shape[0], eval_batch):
			out = model(x[i:i + eval_batch])
			correct += int((out.argmax(1) == y[i:i + eval_batch]).sum())
	model.train()
	return correct / x.shape[0]


def peak_rss_mib():
	return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main():
	torch.set_num_threads(args.threads)
	torch.manual_seed(args.seed)

	xtr, ytr = load_split(args.data_dir, "train", args.train_limit)
	xte, yte = load_split(args.data_dir, "t10k", args.test_limit)
	# Normalise as lowbit does: (x/255 - mean) / std with the training set's
	# stats, taken exactly from the pixel histogram; converted in place so the
	# peak RSS holds one float copy of each set and no float64 temporaries.
	counts = np.bincount(xtr.ravel(), minlength=256).astype(np.float64)
	v = np.arange(256, dtype=np.float64) / 255.0
	mean = float((counts * v).sum() / counts.sum())
	std = float(np.sqrt((counts * (v - mean) ** 2).sum() / counts.sum()))

	def to_float(u8):
		f = u8.astype(np.float32)
		f *= 1.0 / 255.0
		f -= mean
		f /= std
		return f
	xtr_f, xte_f = to_float(xtr), to_float(xte)
	xtr_t = torch.from_numpy(xtr_f).unsqueeze(1)
	xte_t = torch.from_numpy(xte_f).unsqueeze(1)
	ytr_t = torch.from_numpy(ytr.astype(np.int64))
	yte_t = torch.from_numpy(yte.astype(np.int64))
	n = xtr_t.shape[0]

	model = MODELS[args.model]()
	nparams = sum(p.numel() for p in model.parameters())
	opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
	blas = openblas_info()
	kernels = [] if args.no_probe else probe_kernels(model, xtr_t[:args.batch], ytr_t[:args.batch])

	print(f"pytorch {torch.__version__}: model={args.model} params={nparams} threads={args.threads} "
	      f"batch={args.batch} lr={args.lr} momentum={args.momentum} train={n} test={xte_t.shape[0]} "
	      f"mean={mean:.4f} std={std:.4f}")
	print(f"pytorch: openblas core={blas['corename']} threads={blas['threads']} lib={blas['lib']} "
	      f"mkldnn={torch.backends.mkldnn.is_available()} mkl={torch.backends.mkl.is_available()} "
	      f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
	if kernels:
		print("pytorch: kernels " + " ".join(kernels))
	sys.stdout.flush()

	gen = torch.Generator().manual_seed(args.seed)
	rates, accs = [], []
	for epoch in range(args.epochs):
		perm = torch.randperm(n, generator=gen)
		loss_sum, steps = 0.0, 0
		t0 = time.perf_counter()
		for i in range(0, n, args.batch):
			idx = perm[i:i + args.batch]
			xb, yb = xtr_t[idx], ytr_t[idx]
			opt.zero_grad(set_to_none=True)
			loss = F.cross_entropy(model(xb), yb)
			loss.backward()
			opt.step()
			loss_sum += loss.item()
			steps += 1
		dt = time.perf_counter() - t0
		rates.append(n / dt)
		acc = evaluate(model, xte_t, yte_t, args.eval_batch)
		accs.append(acc)
		print(f"epoch {epoch + 1}/{args.epochs} train_loss {loss_sum / steps:.4f} test_acc {acc:.4f} "
		      f"train_time_s {dt:.2f} samples_per_s {n / dt:.1f}")
		sys.stdout.flush()

	conv = "oneDNN" if any("mkldnn" in k for k in kernels) else ("im2col+BLAS" if any("conv" in k for k in kernels) else "none")
	print(f"RESULT tool=pytorch model={args.model} epochs={args.epochs} threads={args.threads} batch={args.batch} "
	      f"median_samples_per_s={statistics.median(rates):.2f} test_acc={accs[-1]:.4f} "
	      f"peak_rss_mib={peak_rss_mib():.1f} blas_corename={blas['corename']} blas_threads={blas['threads']} "
	      f"conv={conv} samples_per_s_epochs={','.join(f'{r:.1f}' for r in rates)} "
	      f"test_acc_epochs={','.join(f'{a:.4f}' for a in accs)}")
	return 0


if __name__ == "__main__":
	sys.exit(main())
