"""MNIST / Fashion-MNIST / CIFAR-10 sources on small files in the exact upstream formats.

The files are written here byte for byte as upstream ships them (gzipped IDX; a tar.gz of
pickled batches), so torchvision's real parsers and integrity checks run; only their content
and size are made up, and ``checksums`` carries their md5s in place of the upstream ones.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

import genlab  # noqa: F401  (before torchvision)
from genlab.data.sources.torchvision_sources import Cifar10Source, IdxSource
from genlab.errors import DatasetError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


# --------------------------------------------------------------------------- upstream formats


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def idx_images(images: np.ndarray) -> bytes:
    """IDX3: magic 2051 (0x0803: ubyte, 3 dims), big-endian N, rows, cols, then pixels."""
    return struct.pack(">IIII", 2051, *images.shape) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    """IDX1: magic 2049 (0x0801: ubyte, 1 dim), big-endian N, then labels."""
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def write_idx_archives(raw: Path, counts=(20, 10), seed: int = 0) -> dict:
    """Write the four upstream .gz files; return the arrays and the files' md5s."""
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    arrays, checksums = {}, {}
    for (split, (image_file, label_file)), n in zip(IDX_FILES.items(), counts, strict=True):
        images = rng.integers(1, 256, size=(n, 28, 28), dtype=np.uint8)  # no zeros: see padding
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        (raw / image_file).write_bytes(gzip.compress(idx_images(images)))
        (raw / label_file).write_bytes(gzip.compress(idx_labels(labels)))
        arrays[split] = (images, labels)
        checksums.update({f: md5(raw / f) for f in (image_file, label_file)})
    return {"arrays": arrays, "checksums": checksums}


class Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING opcodes).

    The upstream batches are Python 2 cPickle files: their keys and the numpy buffers are
    Python 2 ``str``, which torchvision's ``pickle.load(f, encoding="latin1")`` turns into
    ``str`` keys. A Python 3 pickle of ``b"data"`` would stay ``bytes`` and not be that format.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def pickled(obj: dict) -> bytes:
    """A protocol-2 pickle as Python 2 wrote it (see Py2Pickler)."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def cifar_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    """N x 3072 uint8 rows: 1024 R, then 1024 G, then 1024 B, each row-major 32x32."""
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar_archive(root: Path, per_batch: int = 4, n_test: int = 5, seed: int = 0) -> dict:
    """Write cifar-10-python.tar.gz holding cifar-10-batches-py/ as upstream does."""
    rng = np.random.default_rng(seed)
    files, arrays = {}, {"train": [], "test": []}
    for name in CIFAR_BATCHES:
        n = n_test if name == "test_batch" else per_batch
        rows, labels = cifar_rows(n, rng), [int(x) for x in rng.integers(0, 10, size=n)]
        files[name] = pickled(
            {
                b"batch_label": name.encode(),
                b"labels": labels,
                b"data": rows,
                b"filenames": [b"x.png"] * n,
            }
        )
        arrays["test" if name == "test_batch" else "train"].append((rows, labels))
    names = [c.encode() for c in CIFAR_CLASSES]
    files["batches.meta"] = pickled(
        {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072}
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    root.mkdir(parents=True, exist_ok=True)
    (root / CIFAR_ARCHIVE).write_bytes(buffer.getvalue())
    checksums = {name: hashlib.md5(payload).hexdigest() for name, payload in files.items()}
    checksums[CIFAR_ARCHIVE] = md5(root / CIFAR_ARCHIVE)
    return {"arrays": arrays, "checksums": checksums}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def mnist(tmp_path: Path) -> dict:
    written = write_idx_archives(tmp_path / "MNIST" / "raw")
    return {**written, "root": tmp_path, "raw": tmp_path / "MNIST" / "raw"}


@pytest.fixture
def cifar(tmp_path: Path) -> dict:
    return {**write_cifar_archive(tmp_path), "root": tmp_path}


def idx_source(fx: dict, **kwargs) -> IdxSource:
    args = {
        "dataset": "mnist",
        "download_dir": fx["root"],
        "checksums": fx["checksums"],
        "download": False,
        **kwargs,
    }
    return IdxSource(**args)


def cifar_source(fx: dict, **kwargs) -> Cifar10Source:
    args = {"download_dir": fx["root"], "checksums": fx["checksums"], "download": False, **kwargs}
    return Cifar10Source(**args)


# --------------------------------------------------------------------------- MNIST-like


def test_mnist_loads_padded_to_32(mnist):
    splits = idx_source(mnist).load()
    for name, n in (("train", 20), ("test", 10)):
        images, labels = mnist["arrays"][name]
        split = splits[name]
        assert split.images.shape == (n, 1, 32, 32) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.int64
        np.testing.assert_array_equal(split.labels, labels)
        np.testing.assert_array_equal(split.images[:, 0, 2:30, 2:30], images)  # centred
        border = np.ones((32, 32), bool)
        border[2:30, 2:30] = False
        assert not split.images[:, 0][:, border].any()  # 2 px of zeros on every side


def test_mnist_meta(mnist):
    source = idx_source(mnist)
    source.load()
    meta = source.meta()
    assert meta["name"] == "mnist"
    assert "CC BY-SA 3.0" in meta["licence"] and "LeCun" in meta["licence"]
    assert meta["classes"][0] == "0 - zero" and len(meta["classes"]) == 10
    assert meta["checksums"]["files"] == mnist["checksums"]
    assert meta["checksums"]["from"] == "config"
    assert "padded" in meta["resize_filter"]
    urls = meta["urls"]["train-images-idx3-ubyte.gz"]
    assert urls and all(u.endswith("train-images-idx3-ubyte.gz") for u in urls)


def test_meta_before_load_runs_load(mnist):
    assert idx_source(mnist).meta()["checksums"]["files"] == mnist["checksums"]


def test_fashion_mnist(tmp_path):
    written = write_idx_archives(tmp_path / "FashionMNIST" / "raw", counts=(6, 4), seed=1)
    source = idx_source({**written, "root": tmp_path}, dataset="fashion_mnist")
    splits = source.load()
    assert splits["train"].images.shape == (6, 1, 32, 32)
    assert splits["test"].images.shape == (4, 1, 32, 32)
    np.testing.assert_array_equal(splits["test"].labels, written["arrays"]["test"][1])
    meta = source.meta()
    assert meta["name"] == "fashion_mnist" and meta["licence"].startswith("MIT")
    assert "Zalando" in meta["licence"] and meta["classes"][-1] == "Ankle boot"


def test_native_and_resized_sizes(mnist):
    native = idx_source(mnist, image_size=28).load()["train"].images
    np.testing.assert_array_equal(native[:, 0], mnist["arrays"]["train"][0])
    source = idx_source(mnist, image_size=16)
    resized = source.load()["train"].images
    assert resized.shape == (20, 1, 16, 16) and resized.dtype == np.uint8
    assert "bilinear" in source.meta()["resize_filter"]


def test_uncompressed_files_always_come_from_the_verified_archives(mnist):
    raw = mnist["raw"]
    idx_source(mnist).load()  # leaves the extracted IDX files behind
    bogus = np.zeros((20, 28, 28), np.uint8)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_images(bogus))  # tampered after the fact
    processed = mnist["root"] / "MNIST" / "processed"  # torchvision's legacy cache: ignored
    processed.mkdir()
    for name in ("training.pt", "test.pt"):
        (processed / name).write_bytes(b"stale")
    images = idx_source(mnist).load()["train"].images
    np.testing.assert_array_equal(images[:, 0, 2:30, 2:30], mnist["arrays"]["train"][0])


def test_upstream_checksums_when_null(mnist):
    with pytest.raises(DatasetError) as info:
        idx_source(mnist, checksums=None).load()
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message  # the md5 torchvision publishes
    assert "upstream" in message


def test_idx_checksum_mismatch_names_file_and_fix(mnist):
    label_file = mnist["raw"] / "t10k-labels-idx1-ubyte.gz"
    label_file.write_bytes(gzip.compress(idx_labels(np.arange(10))))
    with pytest.raises(DatasetError) as info:
        idx_source(mnist).load()
    message = str(info.value)
    assert str(label_file) in message
    assert mnist["checksums"]["t10k-labels-idx1-ubyte.gz"] in message and md5(label_file) in message
    assert "delete it" in message


def test_truncated_gz_with_matching_md5_is_refused(mnist):
    path = mnist["raw"] / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    checksums = {**mnist["checksums"], path.name: md5(path)}
    with pytest.raises(DatasetError) as info:
        idx_source(mnist, checksums=checksums).load()
    assert str(path) in str(info.value) and "decompress" in str(info.value)
    assert not (mnist["raw"] / "train-images-idx3-ubyte").exists()  # nothing half-written


def test_malformed_idx_content_is_refused(mnist):
    path = mnist["raw"] / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_images(np.zeros((20, 28, 28), np.uint8))))  # wrong type
    checksums = {**mnist["checksums"], path.name: md5(path)}
    with pytest.raises(DatasetError, match="torchvision could not parse"):
        idx_source(mnist, checksums=checksums).load()


def test_missing_idx_file_without_download(mnist):
    path = mnist["raw"] / "t10k-images-idx3-ubyte.gz"
    path.unlink()
    with pytest.raises(DatasetError) as info:
        idx_source(mnist).load()
    assert str(path) in str(info.value) and "data.source.download=true" in str(info.value)


@pytest.fixture
def mirror(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a folder; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
        server.shutdown()
        thread.join(timeout=5)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        QuietHandler.requests.append(self.path)


def closed_port_url() -> str:
    """A base URL on which nothing listens: a mirror that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_upstream_urls_are_torchvisions(tmp_path):
    import torchvision.datasets

    source = IdxSource(dataset="mnist", download_dir=tmp_path)
    assert source._urls("t10k-images-idx3-ubyte.gz") == [
        f"{m}t10k-images-idx3-ubyte.gz" for m in torchvision.datasets.MNIST.mirrors
    ]
    assert Cifar10Source(download_dir=tmp_path).urls == [torchvision.datasets.CIFAR10.url]


def test_download_fills_missing_archives_from_the_next_mirror(mnist, mirror):
    served, url = mirror
    for f in list(mnist["raw"].iterdir()):
        os.replace(f, served / f.name)
    QuietHandler.requests.clear()
    source = idx_source(mnist, download=True, mirrors=[closed_port_url(), url])
    splits = source.load()
    assert splits["train"].images.shape == (20, 1, 32, 32)
    assert np.array_equal(splits["test"].labels, mnist["arrays"]["test"][1])
    assert set(QuietHandler.requests) == {f"/{f.name}" for f in served.iterdir()}
    assert sorted(f.name for f in mnist["raw"].glob("*.gz")) == sorted(
        f.name for f in served.iterdir()
    )
    assert not list(mnist["raw"].glob(".*"))  # no scratch folders left
    assert source.meta()["urls"]["train-images-idx3-ubyte.gz"][1].startswith(url)


def test_failed_download_is_reported(mnist):
    (mnist["raw"] / "train-images-idx3-ubyte.gz").unlink()
    down = closed_port_url()
    with pytest.raises(DatasetError) as info:
        idx_source(mnist, download=True, mirrors=[down]).load()
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and down in message
    assert "place it at" in message
    assert not (mnist["raw"] / "train-images-idx3-ubyte.gz").exists()


def test_download_of_wrong_bytes_is_refused(mnist, mirror):
    """torchvision's own md5 check on download: a mirror serving other bytes leaves nothing."""
    served, url = mirror
    target = mnist["raw"] / "t10k-labels-idx1-ubyte.gz"
    (served / target.name).write_bytes(gzip.compress(b"not the labels"))
    target.unlink()
    with pytest.raises(DatasetError) as info:
        idx_source(mnist, download=True, mirrors=[url]).load()
    assert target.name in str(info.value)
    assert not target.exists() and not list(mnist["raw"].glob(".*"))


def test_mirrors_must_be_a_list_of_urls(tmp_path):
    with pytest.raises(ValueError, match="mirrors must be a list of base URLs"):
        IdxSource(dataset="mnist", download_dir=tmp_path, mirrors="http://host/")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "kmnist"}, r"one of \['fashion_mnist', 'mnist'\]"),
        ({"image_size": 0}, "positive int"),
        ({"image_size": "32"}, "positive int"),
        ({"image_size": True}, "positive int"),
        ({"download": "yes"}, "true or false"),
        ({"checksums": {"train-images-idx3-ubyte.gz": "0" * 32}}, "missing"),
    ],
)
def test_idx_arguments_validated(tmp_path, kwargs, match):
    args = {"dataset": "mnist", "download_dir": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=match):
        IdxSource(**args)


def test_checksum_must_be_md5(mnist):
    checksums = {**mnist["checksums"], "train-images-idx3-ubyte.gz": "not-an-md5"}
    with pytest.raises(ValueError, match="not an md5"):
        idx_source(mnist, checksums=checksums)


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar_loads_in_upstream_channel_order(cifar):
    source = cifar_source(cifar)
    splits = source.load()
    train, test = splits["train"], splits["test"]
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == np.uint8
    assert test.images.shape == (5, 3, 32, 32) and test.labels.dtype == np.int64
    rows = np.concatenate([r for r, _ in cifar["arrays"]["train"]])
    labels = sum((lab for _, lab in cifar["arrays"]["train"]), [])
    np.testing.assert_array_equal(train.labels, labels)
    i, c, h, w = 7, 2, 5, 30  # blue, row 5, column 30 of image 7
    assert train.images[i, c, h, w] == rows[i, c * 1024 + h * 32 + w]
    np.testing.assert_array_equal(train.images.reshape(20, 3072), rows)
    np.testing.assert_array_equal(test.images.reshape(5, 3072), cifar["arrays"]["test"][0][0])


def test_cifar_meta(cifar):
    source = cifar_source(cifar)
    source.load()
    meta = source.meta()
    assert meta["name"] == "cifar10" and meta["classes"] == CIFAR_CLASSES
    assert "Krizhevsky 2009" in meta["licence"] and "no explicit licence" in meta["licence"]
    assert meta["checksums"]["files"] == cifar["checksums"]
    assert meta["urls"][CIFAR_ARCHIVE] == [
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    ]
    assert meta["resize_filter"].startswith("none")


def test_cifar_resized(cifar):
    source = cifar_source(cifar, image_size=16)
    assert source.load()["test"].images.shape == (5, 3, 16, 16)
    assert "bilinear" in source.meta()["resize_filter"]


def test_cifar_re_extracts_over_tampered_batches(cifar):
    cifar_source(cifar).load()
    batch = cifar["root"] / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(b"tampered")
    assert cifar_source(cifar).load()["train"].images.shape == (20, 3, 32, 32)


def test_cifar_upstream_checksums_when_null(cifar):
    with pytest.raises(DatasetError) as info:
        cifar_source(cifar, checksums=None).load()
    assert CIFAR_ARCHIVE in str(info.value) and "c58f30108f718f92721af3b95e74349a" in str(
        info.value
    )


def test_cifar_archive_checksum_mismatch(cifar):
    checksums = {**cifar["checksums"], CIFAR_ARCHIVE: "0" * 32}
    with pytest.raises(DatasetError) as info:
        cifar_source(cifar, checksums=checksums).load()
    message = str(info.value)
    assert str(cifar["root"] / CIFAR_ARCHIVE) in message and "0" * 32 in message
    assert cifar["checksums"][CIFAR_ARCHIVE] in message


def test_cifar_batch_checksum_mismatch_names_the_batch(cifar):
    checksums = {**cifar["checksums"], "data_batch_3": "1" * 32}
    with pytest.raises(DatasetError) as info:
        cifar_source(cifar, checksums=checksums).load()
    message = str(info.value)
    assert "data_batch_3" in message and "1" * 32 in message
    assert cifar["checksums"]["data_batch_3"] in message and "integrity" in message


def test_cifar_truncated_archive_with_matching_md5(cifar):
    archive = cifar["root"] / CIFAR_ARCHIVE
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    checksums = {**cifar["checksums"], CIFAR_ARCHIVE: md5(archive)}
    with pytest.raises(DatasetError) as info:
        cifar_source(cifar, checksums=checksums).load()
    assert str(archive) in str(info.value) and "cannot be extracted" in str(info.value)
    assert not (cifar["root"] / "cifar-10-batches-py").exists()
    assert not list(cifar["root"].glob(".cifar-extract.*"))


def test_cifar_missing_archive_without_download(cifar):
    (cifar["root"] / CIFAR_ARCHIVE).unlink()
    with pytest.raises(DatasetError) as info:
        cifar_source(cifar).load()
    assert CIFAR_ARCHIVE in str(info.value) and "data.source.download=true" in str(info.value)


def test_cifar_download_from_a_mirror(cifar, mirror):
    served, url = mirror
    os.replace(cifar["root"] / CIFAR_ARCHIVE, served / CIFAR_ARCHIVE)
    source = cifar_source(cifar, download=True, mirrors=[url])
    assert source.load()["test"].images.shape == (5, 3, 32, 32)
    assert md5(cifar["root"] / CIFAR_ARCHIVE) == cifar["checksums"][CIFAR_ARCHIVE]
    assert source.meta()["urls"] == {CIFAR_ARCHIVE: [f"{url}{CIFAR_ARCHIVE}"]}


def test_cifar_checksums_must_cover_every_file(tmp_path):
    with pytest.raises(ValueError, match="data_batch_1"):
        Cifar10Source(download_dir=tmp_path, checksums={CIFAR_ARCHIVE: "0" * 32})
    with pytest.raises(ValueError, match="positive int"):
        Cifar10Source(download_dir=tmp_path, image_size=-3)


def test_built_by_hydra_from_the_config_shape(mnist, cifar):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    module = "genlab.data.sources.torchvision_sources"
    idx = OmegaConf.create(
        {
            "_target_": f"{module}.IdxSource",
            "dataset": "mnist",
            "download_dir": str(mnist["root"]),
            "image_size": 32,
            "checksums": mnist["checksums"],
            "download": False,
        }
    )
    assert instantiate(idx).load()["test"].images.shape == (10, 1, 32, 32)
    cifar_cfg = OmegaConf.create(
        {
            "_target_": f"{module}.Cifar10Source",
            "download_dir": str(cifar["root"]),
            "image_size": 32,
            "checksums": cifar["checksums"],
            "download": False,
        }
    )
    assert instantiate(cifar_cfg).load()["test"].images.shape == (5, 3, 32, 32)
    null = OmegaConf.create({**OmegaConf.to_container(cifar_cfg), "checksums": None})
    assert instantiate(null).checksums[CIFAR_ARCHIVE] == "c58f30108f718f92721af3b95e74349a"
