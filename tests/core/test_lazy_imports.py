"""The classical path never loads torch: ~2 s and ~200 MiB less for every ``fuse -m sf`` run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from focusstudio.core.training.recipe import recipe_names
from focusstudio.core.training.settings import trainable_method_names

PROBE = """
import sys
from focusstudio.cli import main
code = main(["fuse", *sys.argv[1:3], "-o", sys.argv[3], "--method", "sf"])
assert code == 0, code
assert "torch" not in sys.modules, "the sf path imported torch"
from focusstudio.core.methods.registry import get_method, list_methods
assert "gacn" in list_methods() and get_method("sesf").params
assert "torch" not in sys.modules, "declaring the deep methods imported torch"
print("ok")
"""


def test_listing_methods_and_fusing_with_sf_do_not_import_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(2):
        path = tmp_path / f"{index}.png"
        cv2.imwrite(str(path), (rng.random((32, 40)) * 255).astype(np.uint8))
        paths.append(str(path))
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *paths, str(tmp_path / "out.png")],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip().endswith("ok")


def test_deep_method_modules_still_run_after_the_lazy_import() -> None:
    from focusstudio.core.methods import gacn, sesf

    assert sesf.sesf_arch.SESFNet.__name__ == "SESFNet"
    assert gacn.gacn_arch.SIGMOID_GAIN > 0
    assert gacn.torch.zeros(2).sum().item() == 0.0


def test_the_cli_lists_exactly_the_methods_with_a_training_recipe() -> None:
    assert sorted(trainable_method_names()) == sorted(recipe_names())
