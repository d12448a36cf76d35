"""The TrainSpec: every training setting declared once, and the config defaults, the
``focusstudio train`` flags, the validation, the resumable set and the wizard's fields all read it."""

from __future__ import annotations

import argparse
import io
from dataclasses import fields
from pathlib import Path

import pytest

from focusstudio.core.errors import InputError
from focusstudio.core.training.catalog import training_params
from focusstudio.core.training.config import RESUMABLE_OVERRIDES, TrainConfig, make_config
from focusstudio.core.training.recipe import get_recipe, recipe_names
from focusstudio.core.training.settings import TRAIN_SPEC, trainable_method_names
from focusstudio.training_cli import _overrides, add_train_arguments, run_train

#: Every flag ``focusstudio train`` had before the flags were generated (none may disappear).
FLAGS_BEFORE = (
    "--method", "--data", "--out", "--manifest", "--masks", "--segs", "--run-dir", "--resume", "--init-weights",
    "--data-format", "--steps", "--batch-size", "--crop", "--resize", "--lr", "--lr-schedule", "--seed",
    "--device", "--threads", "--val-fraction", "--val-every", "--val-samples", "--checkpoint-every",
    "--checkpoint-interval", "--export-every", "--log-every", "--synthesis", "--option", "--preview", "--force",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser


def test_every_config_field_is_declared_once_with_its_default() -> None:
    config_fields = [f.name for f in fields(TrainConfig) if f.name != "run_id"]
    assert sorted(config_fields) == sorted(setting.name for setting in TRAIN_SPEC)
    bare = TrainConfig(method="gacn", data=".")
    for setting in TRAIN_SPEC:
        if setting.name not in ("method", "data"):
            assert getattr(bare, setting.name) == setting.default, setting.name
    assert bare.options is not TrainConfig(method="gacn", data=".").options  # no shared mutable default


def test_the_recipe_decides_exactly_the_per_method_settings() -> None:
    for method in recipe_names():
        defaults = get_recipe(method).defaults()
        config = make_config(method, ".")
        for name in TRAIN_SPEC.per_method:
            assert getattr(config, name) == getattr(defaults, name), (method, name)
        assert config.seed == TRAIN_SPEC.default("seed")  # not per method: the spec's default


def test_the_trainable_methods_listed_without_torch_are_the_recipes() -> None:
    assert sorted(trainable_method_names()) == sorted(recipe_names())


def test_every_flag_of_before_still_parses_and_reaches_its_setting(tmp_path: Path) -> None:
    parser = _parser()
    flags = {option for action in parser._actions for option in action.option_strings}
    assert set(FLAGS_BEFORE) <= flags
    args = parser.parse_args([
        "--method", "gacn", "--data", str(tmp_path), "--steps", "7", "--batch-size", "3", "--crop", "16",
        "--resize", "0", "--lr", "0.002", "--lr-schedule", '{"kind": "constant"}', "--seed", "5",
        "--device", "cpu", "--val-fraction", "0.2", "--val-every", "4", "--val-samples", "6",
        "--checkpoint-every", "2", "--checkpoint-interval", "9.5", "--export-every", "3", "--log-every", "1",
        "--synthesis", '{"flip": false}', "--option", "qg_weight=0.5", "--option", "name=x",
        "--init-weights", "w.pt", "--data-format", "images", "--out", "o.pt", "--manifest", "m.json",
        "--masks", "mk", "--segs", "sg", "--run-dir", "run",
    ])
    overrides = _overrides(args)
    assert overrides == {
        "steps": 7, "batch_size": 3, "crop": 16, "resize": 0, "lr": 0.002, "lr_schedule": {"kind": "constant"},
        "seed": 5, "device": "cpu", "val_fraction": 0.2, "val_every": 4, "val_samples": 6, "checkpoint_every": 2,
        "checkpoint_interval_s": 9.5, "export_every": 3, "log_every": 1, "synthesis": {"flip": False},
        "options": {"qg_weight": 0.5, "name": "x"}, "init_weights": "w.pt", "data_format": "images",
        "out": "o.pt", "manifest": "m.json", "masks": "mk", "segs": "sg", "run_dir": "run",
    }
    config = make_config("gacn", tmp_path, **overrides)
    assert config.resize is None and config.checkpoint_interval_s == 9.5 and config.options["qg_weight"] == 0.5
    assert _overrides(_parser().parse_args([])) == {}  # nothing given: nothing overridden


@pytest.mark.parametrize(("name", "bad"), [
    ("steps", 0), ("batch_size", 0), ("crop", 4), ("lr", 0.0), ("val_fraction", 1.0), ("val_every", 0),
    ("seed", -1), ("checkpoint_every", -1), ("export_every", -2), ("data_format", "jpeg"), ("device", "tpu"),
])
def test_declared_ranges_are_enforced_in_one_line(name: str, bad: object) -> None:
    with pytest.raises(InputError) as info:
        make_config("gacn", ".", **{name: bad})
    message = str(info.value)
    assert "\n" not in message and TRAIN_SPEC[name].label in message


def test_the_cross_setting_check_keeps_its_message() -> None:
    with pytest.raises(InputError, match="crop 100 is larger than the resize 64"):
        make_config("gacn", ".", crop=100, resize=64)


def test_a_bad_flag_value_is_one_line_exit_2(tmp_path: Path) -> None:
    stream = io.StringIO()
    args = _parser().parse_args(["--method", "gacn", "--data", str(tmp_path), "--out", "x.pt", "--seed", "-1"])
    assert run_train(args, stream) == 2
    assert stream.getvalue().count("\n") == 1 and "seed must be" in stream.getvalue()


def test_the_resumable_settings_are_those_of_before() -> None:
    assert {
        "steps", "device", "out", "manifest", "run_dir", "data", "masks", "segs", "checkpoint_every",
        "checkpoint_interval_s", "export_every", "log_every", "val_every",
    } == RESUMABLE_OVERRIDES


def test_the_wizard_fields_are_the_declared_settings() -> None:
    form = training_params("gacn", finetune=False)
    defaults = get_recipe("gacn").defaults()
    generated = ("batch_size", "crop", "resize", "lr", "device", "seed", "val_every", "val_samples",
                 "checkpoint_interval_s")  # length and schedule choice are the wizard's own way to set steps
    for setting in (TRAIN_SPEC[name] for name in generated):
        field = form.get(setting.name)
        assert field.help.lower() == setting.help.lower(), setting.name
        assert field.minimum == (setting.form_minimum if setting.form_minimum is not None else setting.minimum)
        assert field.maximum == (setting.form_maximum if setting.form_maximum is not None else setting.maximum)
        assert field.choices == setting.choices and field.log_scale == setting.log_scale
    assert form.get("crop").default == defaults.crop and form.get("batch_size").default == defaults.batch_size
    # The form's narrower bounds are a widget hint; the trainer accepts what the spec accepts.
    assert make_config("gacn", ".", crop=4096, resize=4096).crop == 4096
