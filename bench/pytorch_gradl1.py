#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# PyTorch peer of bench/reg-cost: the step cost of Gradient-l1 regularisation
# (Alizadeh et al., ICLR 2020) done the authors' way, by exact double
# backprop, against a plain training step of the same model.
#
# Model: LeNet-5 of methods.md 1.1 as lowbit builds it (core/models/archs.c,
# lenet_like): 32C5-MP2-64C5-MP2-512FC-10, valid convolutions, ReLU, no batch
# norm, no dropout. Data: random tensors of the Fashion-MNIST shape
# (1x28x28, 10 classes), fixed before timing, so no I/O is timed.
#   (a) plain step:   forward, batch-mean cross-entropy, backward, Adam step;
#   (b) Gradient-l1:  g = autograd.grad(L, θ + y, create_graph=True),
#                     L_total = L + λ (Σ|∇_θ L|_1 + Σ_l |∇_{y_l} L|_1),
#                     backward of L_total, Adam step.
# y_l are the inputs of conv2, fc1 and fc2 (the post-pool / post-ReLU
# tensors; the flatten is the tensor it aliases), as lowbit's gradl1 taps
# (docs/methods/gradl1.md §1); sum over batch and units, one λ for both.
#
# Timing: --warmup steps, then --steps steps timed with perf_counter, three
# times (--repeats); the median of the repeats is reported. Run with Debian's
# interpreter (/usr/bin/python3, package python3-torch). Prints a markdown
# table and, last, one machine-readable line:
#   RESULT plain_samples_per_s=... gradl1_samples_per_s=... time_ratio=... blas_corename=...
import argparse
import os
import sys


def parse_args(argv):
	p = argparse.ArgumentParser(description="Step cost of Gradient-l1 (double backprop) vs a plain step in PyTorch.")
	p.add_argument("--steps", type=int, default=100, help="timed steps per repeat of the plain step")
	p.add_argument("--gradl1-steps", type=int, default=0,
		       help="timed steps per repeat of the Gradient-l1 step (0 = same as --steps)")
	p.add_argument("--warmup", type=int, default=3)
	p.add_argument("--repeats", type=int, default=3)
	p.add_argument("--batch", type=int, default=128)
	p.add_argument("--threads", type=int, default=1)
	p.add_argument("--lam", type=float, default=0.01, help="λ of both terms")
	p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
	p.add_argument("--seed", type=int, default=1)
	p.add_argument("--check", action="store_true",
		       help="also check the regularised gradient against central differences of the objective (float64)")
	a = p.parse_args(argv)
	if min(a.steps, a.batch, a.threads, a.repeats) < 1 or a.warmup < 0 or a.gradl1_steps < 0:
		p.error("--steps, --batch, --threads, --repeats must be >= 1; --warmup, --gradl1-steps >= 0")
	return a


args = parse_args(sys.argv[1:])
# Thread counts must be in the environment before torch (libgomp, OpenBLAS) loads.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
	os.environ[var] = str(args.threads)

import ctypes  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class LeNet5(nn.Module):
	"""32C5-MP2-64C5-MP2-512FC-10, valid convolutions (lowbit model.arch=lenet5).
	forward(x, taps) appends the inputs of conv2, fc1 and fc2 to taps."""

	def __init__(self):
		super().__init__()
		self.conv1 = nn.Conv2d(1, 32, 5)
		self.conv2 = nn.Conv2d(32, 64, 5)
		self.fc1 = nn.Linear(64 * 4 * 4, 512)
		self.fc2 = nn.Linear(512, 10)

	def forward(self, x, taps=None):
		y1 = F.max_pool2d(F.relu(self.conv1(x)), 2)
		y2 = torch.flatten(F.max_pool2d(F.relu(self.conv2(y1)), 2), 1)
		y3 = F.relu(self.fc1(y2))
		if taps is not None:
			taps += [y1, y2, y3]
		return self.fc2(y3)


def gradl1_objective(model, x, y, lam):
	"""L + λ(Σ|∇_θ L| + Σ_l |∇_{y_l} L|), with the graph of the gradients kept."""
	taps = []
	loss = F.cross_entropy(model(x, taps), y)
	params = list(model.parameters())
	grads = torch.autograd.grad(loss, params + taps, create_graph=True)
	reg = sum(g.abs().sum() for g in grads)
	return loss, loss + lam * reg


def plain_step(model, opt, x, y):
	opt.zero_grad(set_to_none=True)
	loss = F.cross_entropy(model(x), y)
	loss.backward()
	opt.step()


def gradl1_step(model, opt, x, y, lam):
	opt.zero_grad(set_to_none=True)
	_, total = gradl1_objective(model, x, y, lam)
	total.backward()
	opt.step()


def openblas_corename():
	"""Core name of the OpenBLAS loaded into this process (torch links
	libblas.so.3, which Debian may point at OpenBLAS)."""
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
			return lib.openblas_get_corename().decode()
		except (OSError, AttributeError):
			continue
	return "not-openblas"


def check_gradient(lam, seed):
	"""The gradient of L_total from double backprop against central differences,
	float64, a small batch, along random directions. |.| has a kink at 0 and
	some gradient entries sit next to it, so the difference is taken of
	F(θ) = L(θ) + λ (Σ s_θ ∇_θ L(θ) + Σ_l s_l ∇_{y_l} L(θ)) with the signs s
	frozen at θ (∇F = ∇L_total there, almost everywhere); F's gradients come
	from first-order autograd only, so the check is independent of the
	double backward it tests."""
	torch.manual_seed(seed)
	m = LeNet5().double()
	x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
	y = torch.randint(0, 10, (4,))
	params = list(m.parameters())

	def first_order():
		taps = []
		loss = F.cross_entropy(m(x, taps), y)
		return loss, torch.autograd.grad(loss, params + taps)

	loss0, g0 = first_order()
	signs = [g.sign() for g in g0]

	def frozen():
		loss, g = first_order()
		return loss.item() + lam * sum(float((s * v).sum()) for s, v in zip(signs, g))

	m.zero_grad()
	_, total = gradl1_objective(m, x, y, lam)
	total.backward()
	grad = [p.grad.clone() for p in params]
	# A net this size has ReLU/max-pool decisions close to any point; a step
	# of 1e-5 already crosses some (the plain loss's own check fails there),
	# 1e-7 in float64 does not for this seed and still leaves ~8 digits.
	h = 1e-7
	good = 0
	for _ in range(3):
		d = [torch.randn_like(p) for p in params]
		f = []
		for sgn in (1, -2):
			with torch.no_grad():
				for p, v in zip(params, d):
					p.add_(sgn * h * v)
			f.append(frozen())
		with torch.no_grad():
			for p, v in zip(params, d):
				p.add_(h * v)
		fd = (f[0] - f[1]) / (2 * h)
		an = sum(float((a * v).sum()) for a, v in zip(grad, d))
		err = abs(fd - an) / max(1e-12, abs(fd) + abs(an))
		print(f"check: directional derivative double-backprop {an:.10g} central-difference {fd:.10g} rel.err {err:.2e}")
		good += err < 1e-5
	return good >= 2


def time_steps(step, n):
	"""Wall seconds and minor page faults per step of n steps."""
	f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
	t0 = time.perf_counter()
	for _ in range(n):
		step()
	dt = time.perf_counter() - t0
	return dt, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / max(n, 1)


def main():
	torch.set_num_threads(args.threads)
	if args.check and not check_gradient(args.lam, args.seed):
		print("check: FAILED (the double-backprop gradient disagrees with central differences)", file=sys.stderr)
		return 1
	torch.manual_seed(args.seed)
	B = args.batch
	# A few fixed random batches, cycled: the data is never the cost.
	pool = [(torch.randn(B, 1, 28, 28), torch.randint(0, 10, (B,))) for _ in range(4)]
	n_g = args.gradl1_steps or args.steps
	rates, faults = {}, {}
	for kind, n in (("plain", args.steps), ("gradl1", n_g)):
		torch.manual_seed(args.seed)
		model = LeNet5()
		opt = torch.optim.Adam(model.parameters(), lr=args.lr)
		it = [0]

		def step():
			x, y = pool[it[0] % len(pool)]
			it[0] += 1
			if kind == "plain":
				plain_step(model, opt, x, y)
			else:
				gradl1_step(model, opt, x, y, args.lam)
		time_steps(step, args.warmup)
		runs = [time_steps(step, n) for _ in range(args.repeats)]
		rates[kind] = [n * B / t for t, _ in runs]
		faults[kind] = statistics.median(f for _, f in runs)
	plain = statistics.median(rates["plain"])
	reg = statistics.median(rates["gradl1"])
	core = openblas_corename()
	ct = os.environ.get("OPENBLAS_CORETYPE", "unset")
	malloc = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")) or "glibc defaults"
	print(f"PyTorch {torch.__version__}, OPENBLAS_CORETYPE={ct} (openblas_get_corename: {core}), LeNet-5, "
	      f"batch {B}, {args.steps}/{n_g} steps (plain/Grad-L1) x {args.repeats} repeats (median), "
	      f"{args.threads} thread(s), Adam, λ={args.lam:g}, malloc: {malloc}")
	print()
	print("| step (PyTorch) | samples/s | relative to plain | step time / plain step | minor faults/step |")
	print("|---|---|---|---|---|")
	print(f"| plain (fwd, bwd, Adam) | {plain:.0f} | 1.00 | 1.00 | {faults['plain']:.0f} |")
	print(f"| Grad-L1, double backprop | {reg:.0f} | {reg / plain:.2f} | {plain / reg:.2f} | {faults['gradl1']:.0f} |")
	print(f"RESULT plain_samples_per_s={plain:.1f} gradl1_samples_per_s={reg:.1f} time_ratio={plain / reg:.3f} "
	      f"blas_corename={core} plain_repeats={','.join(f'{r:.1f}' for r in rates['plain'])} "
	      f"gradl1_repeats={','.join(f'{r:.1f}' for r in rates['gradl1'])} "
	      f"plain_minflt_per_step={faults['plain']:.0f} gradl1_minflt_per_step={faults['gradl1']:.0f}")
	return 0


if __name__ == "__main__":
	sys.exit(main())
