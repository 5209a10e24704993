#!/usr/bin/env python3
"""Writes the tiny fixture files of tests/data in the exact Long Range Arena / IDX / CIFAR release
formats, independently of the C++ writers (PNG encoded here with zlib, IDX and CIFAR by struct).
Run from this folder: python3 make_fixtures.py"""
import gzip, os, struct, zlib, random

random.seed(7)
here = os.path.dirname(os.path.abspath(__file__))

def write(rel, data, mode="w"):
    path = os.path.join(here, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)

# ListOps: header Source<TAB>Target, the release's binarized bracket form; labels computed by hand.
listops = {
    "basic_train.tsv": [
        ("( ( ( [MAX 2 ) 9 ) ] )", 9),
        ("( ( ( ( [MIN 4 ) ( ( ( [MAX 1 ) 7 ) ] ) ) 3 ) ] )", 3),
        ("( ( ( ( [SM 5 ) 8 ) ( ( ( [MED 1 ) 6 ) ] ) ) ] )", 6),
        ("( ( ( ( ( [MED 2 ) 9 ) 4 ) 7 ) ] )", 5),
    ],
    "basic_val.tsv": [("( ( ( [SM 9 ) 9 ) ] )", 8)],
    "basic_test.tsv": [("( ( ( [MIN 3 ) 0 ) ] )", 0), ("( ( ( [MAX 3 ) 4 ) ] )", 4)],
}
for name, rows in listops.items():
    write("listops/" + name, "Source\tTarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows))

# AAN: headerless, label, id1, id2, text1, text2.
aan = {
    "train": [(1, "P01-1001", "P02-2002", "we study parsing .", "parsing study"),
              (0, "P03-3003", "W04-4004", "neural nets", "a survey of trees")],
    "eval": [(1, "P05-5005", "P06-6006", "trees and nets", "nets")],
    "test": [(0, "P07-7007", "P08-8008", "parse", "survey")],
}
for split, rows in aan.items():
    write(f"aan/new_aan_pairs.{split}.tsv", "".join(f"{y}\t{a}\t{b}\t{t1}\t{t2}\n" for y, a, b, t1, t2 in rows))

# aclImdb: one review per file, <id>_<rating>.txt.
imdb = {
    "train/pos": ["A great film!", "Loved it, great cast."],
    "train/neg": ["Bad film.", "Boring, a bad plot."],
    "test/pos": ["Great."],
    "test/neg": ["Bad, bad, bad."],
}
for folder, texts in imdb.items():
    for i, t in enumerate(texts):
        write(f"aclImdb/{folder}/{i}_{7 if 'pos' in folder else 2}.txt", t)

# CIFAR-10 binary batches: 2 records per file (label byte, 1024 R, 1024 G, 1024 B).
def cifar_record(label, seed):
    rnd = random.Random(seed)
    return bytes([label]) + bytes(rnd.randrange(256) for _ in range(3072))
for b in range(1, 6):
    write(f"cifar-10-batches-bin/data_batch_{b}.bin", cifar_record(b, b) + cifar_record((b * 3) % 10, 100 + b), "wb")
write("cifar-10-batches-bin/test_batch.bin", cifar_record(7, 999) + cifar_record(0, 998), "wb")

# IDX (MNIST layout), gzip-compressed: 6 training and 4 test images of 28x28.
def idx_images(n, seed):
    rnd = random.Random(seed)
    return struct.pack(">IIII", 0x803, n, 28, 28) + bytes(rnd.randrange(256) for _ in range(n * 784))
def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)
write("fashion-mnist/train-images-idx3-ubyte.gz", gzip.compress(idx_images(6, 1), mtime=0), "wb")
write("fashion-mnist/train-labels-idx1-ubyte.gz", gzip.compress(idx_labels([0, 1, 2, 3, 4, 9]), mtime=0), "wb")
write("fashion-mnist/t10k-images-idx3-ubyte.gz", gzip.compress(idx_images(4, 2), mtime=0), "wb")
write("fashion-mnist/t10k-labels-idx1-ubyte.gz", gzip.compress(idx_labels([5, 6, 7, 8]), mtime=0), "wb")

# Pathfinder 32: 10 grayscale 8-bit PNGs, metadata lines "imgs/0 sample_i.png i label".
def png_gray(w, h, pixels):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(pixels[y * w:(y + 1) * w]) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
meta = ""
for i in range(10):
    label = i % 2
    px = [0] * 1024
    px[i] = 255            # a marked pixel per image, so tests can tell the images apart
    px[1023 - i] = 128
    write(f"pathfinder32/curv_contour_length_14/imgs/0/sample_{i}.png", png_gray(32, 32, px), "wb")
    meta += f"imgs/0 sample_{i}.png {i} {label} 32 14\n"
write("pathfinder32/curv_contour_length_14/metadata/0.npy", meta)

# Malformed sets for the lra_data exit-status tests: a ListOps row without its Target column, and a
# CIFAR batch whose second record is cut short.
write("malformed/listops/basic_train.tsv", "Source\tTarget\n( ( ( [MAX 2 ) 9 ) ] )\t9\n( ( ( [MIN 2 ) 9 ) ] )\n")
write("malformed/listops/basic_val.tsv", "Source\tTarget\n")
write("malformed/listops/basic_test.tsv", "Source\tTarget\n")
for b in range(1, 6):
    record = open(os.path.join(here, f"cifar-10-batches-bin/data_batch_{b}.bin"), "rb").read()
    write(f"malformed/cifar/data_batch_{b}.bin", record[:4000] if b == 1 else record, "wb")
write("malformed/cifar/test_batch.bin", open(os.path.join(here, "cifar-10-batches-bin/test_batch.bin"), "rb").read(), "wb")
