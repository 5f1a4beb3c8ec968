"""Fixtures: the real tritonserver with the chip backend, a model repository in a temporary folder,
small fits made once (cached), and reference results through libchip's C API.

Started by scripts/test_triton.sh, which builds the backend and sets CHIP_TARGET_DIR.
"""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from chipref import Reference  # noqa: E402
from harness import (BUILD, MODEL, MODEL_NAME, ORT_LIB, Server, SetupError, add_model, config_text,  # noqa: E402
                     make_backend_dir, make_fits, model_files)


@pytest.fixture(scope="session")
def fits():
    try:
        return make_fits()
    except SetupError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def repo(tmp_path_factory, fits):
    repo = tmp_path_factory.mktemp("model_repository")
    fit_names = [p.name for p in fits["paths"]]
    files = dict(model_files(), **{p.name: p for p in fits["paths"]})
    add_model(repo, MODEL_NAME, config_text(MODEL_NAME, fit_names, instances=2), files)
    add_model(repo, "chip_nobatch", config_text("chip_nobatch", fit_names, max_batch_size=0, refined=False), files)
    return repo


@pytest.fixture(scope="session")
def backend_dir(tmp_path_factory):
    try:
        return make_backend_dir(tmp_path_factory.mktemp("backends"))
    except SetupError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def server(repo, backend_dir, tmp_path_factory):
    s = Server(repo, backend_dir, tmp_path_factory.mktemp("log") / "tritonserver.log")
    client = s.client()
    client.load_model(MODEL_NAME)
    client.load_model("chip_nobatch")
    yield s
    rc = s.stop()
    log = pathlib.Path(s.log_path).read_text(errors="replace")
    assert rc == 0, f"tritonserver exited with {rc}:\n{log[-4000:]}"
    assert "panicked" not in log, log[-4000:]


@pytest.fixture(scope="session")
def reference(fits):
    """The C API with the same model and fits (Refined CHIP boxes, as model `chip` is configured)."""
    return Reference(BUILD / "libchip.so", MODEL, fits["paths"], ORT_LIB, refined=True)


@pytest.fixture(scope="session")
def reference_last(fits):
    """Boxes from the last layer's map, as model `chip_nobatch` is configured."""
    return Reference(BUILD / "libchip.so", MODEL, fits["paths"], ORT_LIB, refined=False)
