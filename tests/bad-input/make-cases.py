#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Regenerate the binary cases of the hostile-input corpus (idx/, cifar/).
# Not run by make: the files are committed; run by hand after a change:
#   tests/bad-input/make-cases.py
# Each file is one defect on top of a valid file of the shape run.sh uses
# (8x8 IDX images, 16 training / 8 test samples; one-record CIFAR batches).
import gzip, os, struct

here = os.path.dirname(os.path.abspath(__file__))


def put(name, data):
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)


def images(n, h=8, w=8, magic=0x803):
    return struct.pack(">IIII", magic, n, h, w) + bytes((i * 7) % 256 for i in range(n * h * w))


def labels(n, magic=0x801):
    return struct.pack(">II", magic, n) + bytes(i % 10 for i in range(n))


def record(label):
    return bytes([label]) + bytes((i * 5) % 256 for i in range(3072))


gz = lambda d: gzip.compress(d, 9, mtime=0)

put("idx/images-zero-count", struct.pack(">IIII", 0x803, 0, 8, 8))
put("idx/images-side-too-big", struct.pack(">IIII", 0x803, 1, 5000, 1) + bytes(5000))
put("idx/images-float-magic", images(16, magic=0x0D03))
put("idx/images-rank4-magic", images(16, magic=0x804))
put("idx/images-trailing-bytes", images(16) + b"extra")
put("idx/images-header-cut", images(16)[:10])
put("idx/images-huge-count", struct.pack(">IIII", 0x803, 0x7FFFFFFF, 8, 8) + bytes(64))
good = gz(images(16))
bad = bytearray(good)
bad[len(bad) // 2] ^= 0xFF  # one flipped byte inside the deflate stream
put("idx/images-gzip-corrupt", bytes(bad))
put("idx/images-gzip-truncated", good[: len(good) // 2])
bad = bytearray(good)
bad[-8] ^= 0x01  # CRC-32 of the trailer
put("idx/images-gzip-bad-crc", bytes(bad))
put("idx/labels-out-of-range", labels(16)[:-1] + b"\x0a")
put("idx/labels-zero-count", struct.pack(">II", 0x801, 0))
put("idx/labels-count-mismatch", labels(15))
put("idx/labels-as-images", images(16))

put("cifar/empty.bin", b"")
put("cifar/partial-record.bin", record(1) + record(2)[:100])
put("cifar/label-10.bin", record(1) + record(10))
put("cifar/label-255.bin", record(255))
put("cifar/gzip-truncated.bin", gz(record(1) + record(2))[:200])
put("cifar/one-byte-short.bin", record(3)[:-1])
