#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Regenerate the binary seed corpora of the fuzz harnesses (tests/fuzz/corpus/
# {idx,cifar,runfile}/seed-*) and the YAML seeds taken from the tree. Not run
# by make: the seeds are committed; run it by hand after a format change:
#   tests/fuzz/make-seeds.py BUILD_DIR     (BUILD_DIR holds a built lowbit)
# The run-file seed is a real `lowbit train` run on a tiny IDX set.
import gzip, os, shutil, struct, subprocess, sys, tempfile

top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
corpus = os.path.join(top, "tests", "fuzz", "corpus")


def put(harness, name, data):
    d = os.path.join(corpus, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx_images(n, h, w):
    return struct.pack(">IIII", 0x803, n, h, w) + bytes((i * 37) % 256 for i in range(n * h * w))


def idx_labels(n):
    return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))


def idx_pair(images, labels):  # the fuzz_idx input: length of images, images, labels
    return struct.pack(">I", len(images)) + images + labels


def cifar(n):
    out = b""
    for r in range(n):
        out += bytes([r % 10]) + bytes((r + 3 * i) % 256 for i in range(3072))
    return out


def gz(data):
    return gzip.compress(data, 9, mtime=0)


# YAML seeds: the example configs and specs as shipped.
for src, harness, name in [
    ("examples/lenet5-fashion.yaml", "config", "seed-lenet5-fashion.yaml"),
    ("examples/mlp-fashion.yaml", "config", "seed-mlp-fashion.yaml"),
    ("tests/configs/bn-small.yaml", "config", "seed-bn-small.yaml"),
    ("sweeps/examples/quick.yaml", "spec", "seed-quick.yaml"),
]:
    with open(os.path.join(top, src), "rb") as f:
        put(harness, name, f.read())
# grid.yaml names its base file relative to sweeps/examples; the harness
# offers base.yaml in its scratch folder instead.
with open(os.path.join(top, "sweeps/examples/grid.yaml"), "rb") as f:
    grid = f.read().replace(b"../../examples/lenet5-fashion.yaml", b"base.yaml")
put("spec", "seed-grid.yaml", grid)
# A config with --set overrides after the NUL byte.
put("config", "seed-overrides.yaml",
    b"model:\n  arch: mlp\n  hidden: [8]\ntrain:\n  epochs: 1\n\0"
    b"optimizer.lr=0.1\nschedule.milestones=[1, 2]\nschedule.kind=multistep\n")

put("idx", "seed-plain", idx_pair(idx_images(3, 4, 5), idx_labels(3)))
put("idx", "seed-gzip", idx_pair(gz(idx_images(4, 3, 3)), gz(idx_labels(4))))
put("cifar", "seed-plain", cifar(2))
put("cifar", "seed-gzip", gz(cifar(1)))

# A real run file: lowbit train on a tiny 8x8 IDX set and a 2-layer net.
if len(sys.argv) > 1:
    lowbit = os.path.join(os.path.abspath(sys.argv[1]), "lowbit")
    with tempfile.TemporaryDirectory() as t:
        for name, data in [("ti", idx_images(16, 8, 8)), ("tl", idx_labels(16)),
                           ("vi", idx_images(8, 8, 8)), ("vl", idx_labels(8))]:
            with open(os.path.join(t, name), "wb") as f:
                f.write(data)
        cfg = os.path.join(t, "tiny.yaml")
        with open(cfg, "w") as f:
            f.write("name: tiny\nmodel:\n  arch: custom\n  layers:\n"
                    "    - {op: flatten}\n    - {op: linear, out: 10}\n"
                    "data:\n  dataset: idx\n  dir: %s\n  train_images: ti\n  train_labels: tl\n"
                    "  test_images: vi\n  test_labels: vl\n"
                    "train:\n  epochs: 2\n  batch: 8\n  log_every: 0\n" % t)
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        subprocess.run([lowbit, "train", cfg, "-o", os.path.join(t, "runs"), "-q"], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        with open(os.path.join(t, "runs", "tiny.h5"), "rb") as f:
            put("runfile", "seed-tiny-run.h5", f.read())
