"""The API reference builds from the docstrings (pdoc, numpydoc format), as docs/api.md says.

pdoc runs in a child process so that the modules it imports start fresh there, and the
test can check that no ``__main__`` module (each runs a command line) was imported.
"""

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("pdoc")

ROOT = pathlib.Path(__file__).parents[1]

# Public names and the page that documents each (pdoc anchors a member by its name).
PUBLIC = {
    "gridflow.html": [
        "GaussianMixture",
        "LogConcaveTarget",
        "Grid",
        "Problem",
        "solve",
        "minimize",
    ],
    "gridflow/gaussian.html": ["Gaussian", "ot_map", "constrained_flow"],
    "gridflow/measures.html": [
        "Gaussian",
        "GaussianMixture",
        "LogConcaveTarget",
        "EmpiricalSource",
    ],
    "gridflow/maps.html": ["AffineMap", "GridMap", "map_distance"],
    "neural.html": ["ICNN", "make_method", "run_method"],
    "neural/training.html": ["make_method", "run_method", "SchemeResult"],
    "neural/network.html": ["ICNN", "transport_map"],
}


def _documented_modules() -> list[str]:
    """The modules that docs/api.md's command documents (the test builds the same)."""
    for line in (ROOT / "docs" / "api.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("python -m pdoc") and " -o docs/api " in line:
            return line.split(" -o docs/api ")[1].split()
    raise AssertionError("docs/api.md has no 'python -m pdoc ... -o docs/api MODULES' line")


BUILD = """
import json, sys
import pdoc, pdoc.render
pdoc.render.configure(docformat="numpy")
pdoc.pdoc(*sys.argv[2:], output_directory=__import__("pathlib").Path(sys.argv[1]))
print(json.dumps(sorted(m for m in sys.modules if m.endswith("__main__") and m != "__main__")))
"""


def test_api_reference_builds_with_the_public_names(tmp_path):
    out = tmp_path / "api"
    run = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", BUILD, str(out), *_documented_modules()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == [], "a __main__ module was imported"
    assert (out / "index.html").is_file()
    assert not list(out.rglob("__main__*")), "a __main__ module was documented"
    for page, names in PUBLIC.items():
        html = (out / page).read_text(encoding="utf-8")
        for name in names:
            assert f'id="{name}"' in html, f"{name} missing from {page}"
