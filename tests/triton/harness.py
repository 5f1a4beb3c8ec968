"""The pieces the backend tests and the benchmark share: paths, the cached test fits, model
repository layout, and a tritonserver process on 127.0.0.1."""
import hashlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.request


class SetupError(RuntimeError):
    pass


def _require(path, hint):
    if not pathlib.Path(path).exists():
        raise SetupError(f"{path} not found: {hint}")


def _tritonserver():
    import pytriton
    return pathlib.Path(pytriton.__file__).parent / "tritonserver" / "bin" / "tritonserver"


ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CHIP_TARGET_DIR") or os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
BUILD = TARGET / os.environ.get("CHIP_PROFILE", "release")
DATA = ROOT / "data"
MODEL = DATA / "models" / "efficientnet_lite0.onnx"
ORT_LIB = ROOT / "third_party" / "onnxruntime" / "lib" / "libonnxruntime.so"

# Test photos (real): each the top-1 class of the model is fitted for, with its runner-up.
PHOTOS = [DATA / "images/skimage/chelsea.png", DATA / "images/skimage/coffee.png",
          DATA / "images/boxes/labelme_2011_000025.jpg"]
# Cheap layers for the tests: a 14×14 block output and the conv head.
FIT_LAYERS = "/_blocks.10/Add_output_0,/_swish_1/Clip_output_0"
FIT_IMAGES = 32
FIT_GATES = 64

MODEL_NAME = "chip"


def make_fits():
    """Fits of FIT_LAYERS on 29 aib photos plus the test photos, cached by their inputs."""
    _require(MODEL, "run scripts/setup.sh")
    tool = BUILD / "examples" / "test_fits"
    _require(tool, "run scripts/test_triton.sh (it builds the test_fits example)")
    aib = sorted((DATA / "images" / "aib").glob("*.jpg"), key=lambda p: int(p.stem))[: FIT_IMAGES - len(PHOTOS)]
    images = [str(p) for p in aib] + [str(p) for p in PHOTOS]
    # Keyed by the tool's build too: a changed library may write other fits.
    key = {"layers": FIT_LAYERS, "images": images, "gates": FIT_GATES, "model_size": MODEL.stat().st_size,
           "tool": hashlib.sha256(tool.read_bytes()).hexdigest()}
    cache = BUILD / "triton-test-fits"
    stamp = cache / "key.json"
    meta = cache / "fits.json"
    if not (stamp.exists() and meta.exists() and json.loads(stamp.read_text()) == key):
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        (cache / "images.txt").write_text("\n".join(images) + "\n")
        subprocess.run([str(tool), "--model", str(MODEL), "--images", str(cache / "images.txt"), "--out", str(cache),
                        "--count", str(len(images)), "--gates", str(FIT_GATES), "--layers", FIT_LAYERS,
                        *map(str, PHOTOS)], check=True)
        stamp.write_text(json.dumps(key))
    info = json.loads(meta.read_text())
    info["paths"] = [cache / f for f in info["files"]]
    return info


def config_text(name, fit_files, *, max_batch_size=8, refined=True, outputs=None, extra_params=None,
                dynamic_batching=True, model_file="efficientnet_lite0.onnx", layers=2, instances=1):
    outputs = outputs or {
        "PROBABILITIES": ("TYPE_FP32", [1000]),
        "TOP1": ("TYPE_INT32", [1]),
        "CHIP_MAP": ("TYPE_FP32", [layers, 224, 224]),
        "REFINED_MAP": ("TYPE_FP32", [224, 224]),
        "BOX": ("TYPE_INT32", [4]),
    }
    params = {"model_file": model_file, "fit_files": ",".join(fit_files), "refined": str(refined).lower(),
              "threshold": "0.25"}
    params.update(extra_params or {})
    lines = [f'name: "{name}"', 'backend: "chip"', f"max_batch_size: {max_batch_size}"]
    inputs = [("IMAGE", "TYPE_FP32", [3, 224, 224]), ("IMAGE_BYTES", "TYPE_STRING", [1]), ("CLASS", "TYPE_INT32", [1])]
    lines.append("input [" + ",".join(
        f'{{ name: "{n}" data_type: {t} dims: {d} optional: true }}' for n, t, d in inputs) + "]")
    lines.append("output [" + ",".join(
        f'{{ name: "{n}" data_type: {t} dims: {d} }}' for n, (t, d) in outputs.items()) + "]")
    lines.append(f"instance_group [{{ count: {instances} kind: KIND_CPU }}]")
    if dynamic_batching and max_batch_size > 0:
        lines.append("dynamic_batching { max_queue_delay_microseconds: 20000 }")
    lines.append("parameters [" + ",".join(
        f'{{ key: "{k}" value: {{ string_value: {json.dumps(v)} }} }}' for k, v in params.items()) + "]")
    return "\n".join(lines) + "\n"


def add_model(repo, name, config, files):
    """A model folder: config.pbtxt and version 1 holding `files` ({name: source path or bytes})."""
    d = repo / name
    (d / "1").mkdir(parents=True, exist_ok=True)
    (d / "config.pbtxt").write_text(config)
    for fname, src in files.items():
        dst = d / "1" / fname
        if isinstance(src, (bytes, bytearray)):
            dst.write_bytes(src)
        else:
            shutil.copyfile(src, dst)
    return d


def model_files():
    return {"efficientnet_lite0.onnx": MODEL,
            "efficientnet_lite0.json": MODEL.with_suffix(".json"),
            "imagenet_classes.txt": MODEL.parent / "imagenet_classes.txt"}


def make_backend_dir(d):
    """The deployment layout: <dir>/chip/libtriton_chip.so with libonnxruntime.so beside it."""
    lib = BUILD / "libtriton_chip.so"
    _require(lib, "run scripts/test_triton.sh (cargo build -p triton_chip)")
    _require(ORT_LIB, "run scripts/setup.sh")
    (d / "chip").mkdir(parents=True)
    shutil.copyfile(lib, d / "chip" / "libtriton_chip.so")
    for f in ORT_LIB.parent.glob("libonnxruntime.so*"):
        dst = d / "chip" / f.name
        if f.is_symlink():
            dst.symlink_to(os.readlink(f))
        else:
            shutil.copyfile(f, dst)
    return d


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """tritonserver on 127.0.0.1 with explicit model control."""

    def __init__(self, repo, backend_dir, log_path):
        self.http_port, self.grpc_port = free_port(), free_port()
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.clients = []
        env = dict(os.environ)
        # The backend finds ONNX Runtime beside itself; no other route may hide a broken layout.
        env.pop("CHIP_ORT_LIB", None)
        self.proc = subprocess.Popen(
            [str(_tritonserver()), f"--model-repository={repo}", f"--backend-directory={backend_dir}",
             "--model-control-mode=explicit", "--allow-metrics=false", "--allow-gpu-metrics=false",
             "--http-address=127.0.0.1", f"--http-port={self.http_port}",
             "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
             "--exit-timeout-secs=20", "--log-verbose=0"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.http_url = f"127.0.0.1:{self.http_port}"
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/live", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tritonserver did not come up:\n{self.log_text()}")

    def client(self, protocol="http"):
        """A tritonclient client, closed when the server stops (an open HTTP connection would
        hold up a graceful shutdown)."""
        if protocol == "http":
            import tritonclient.http as mod
            c = mod.InferenceServerClient(self.http_url)
        else:
            import tritonclient.grpc as mod
            c = mod.InferenceServerClient(self.grpc_url)
        self.clients.append(c)
        return c

    def log_text(self):
        self.log.flush()
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def rss_kib(self):
        for line in pathlib.Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self, timeout=60):
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        self.clients.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


