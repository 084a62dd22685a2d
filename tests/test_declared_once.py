"""Every setting and every choice list declared once (issue 36): a default lives in sfrdask.yaml
alone, a setting is declared by one ``setting(...)`` call, and a choice list is one constant of
:mod:`sfrdask.choices` that every option offering it reads."""

from __future__ import annotations

import ast
import dataclasses
import functools
from pathlib import Path

import pytest

from sfrdask import choices, config
from sfrdask.stages import get_stage, names
from sfrdask.stages.base import fields_of
from sfrdask.training.settings import TrainSettings

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sfrdask"
CHOICE_LISTS = {
    name: value
    for name, value in vars(choices).items()
    if name.isupper() and isinstance(value, tuple) and all(isinstance(v, str) for v in value)
}


def _declarations(tree: ast.AST) -> list[tuple[str, int]]:
    """The keys of every ``setting("key", ...)`` call in a module, with its line."""
    return [
        (node.args[0].value, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "setting"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]


def _sources() -> dict[Path, ast.AST]:
    return _parsed(PACKAGE)


@functools.cache
def _parsed(root: Path) -> dict[Path, ast.AST]:
    return {p: ast.parse(p.read_text()) for p in sorted(root.rglob("*.py"))}


def _params_classes() -> dict[str, type]:
    out = {f"stage {n}": get_stage(n).params for n in names()}
    from sfrdask.training.spec import TrainSpec

    out["TrainSpec"] = TrainSpec
    return out


def test_each_setting_is_declared_by_one_call():
    where: dict[str, list[str]] = {}
    for path, tree in _sources().items():
        for key, line in _declarations(tree):
            where.setdefault(key, []).append(f"{path.relative_to(PACKAGE)}:{line}")
    twice = {k: v for k, v in where.items() if len(v) > 1}
    assert not twice, f"settings declared more than once (take the field with same_as/copied): {twice}"
    assert len(where) > 30


@pytest.mark.parametrize("owner", sorted(_params_classes()))
def test_every_setting_field_reads_its_default_from_sfrdask_yaml(owner):
    """A field that is a setting reads sfrdask.yaml when made; no field of the same name as a
    setting of its section keeps a literal default of its own (a second declaration that could
    disagree)."""
    params = _params_classes()[owner]
    defaults = config.defaults()
    for f, _ in fields_of(params):
        key = f.metadata.get("setting")
        if key is None:
            section = "train" if owner == "TrainSpec" or owner == "stage train" else None
            assert section is None or f.name.replace("_", "-") not in defaults[section], (
                f"{owner}.{f.name} has a default of its own, but sfrdask.train.{f.name} is a setting"
            )
            continue
        node = defaults
        for part in key.split("."):
            assert part in node, f"{owner}.{f.name}: setting {key} is not in sfrdask.yaml"
            node = node[part]
        made = params.__dataclass_fields__[f.name].default_factory()
        assert made == config._plain(config.get(key)), (owner, f.name)


def test_every_training_setting_is_an_option_of_train_with_the_same_declaration():
    from sfrdask.training.spec import TrainSpec

    train = {f.name: f for f in dataclasses.fields(get_stage("train").params)}
    spec = {f.name: f for f in dataclasses.fields(TrainSpec)}
    for f in dataclasses.fields(TrainSettings):
        assert dict(train[f.name].metadata) == dict(f.metadata) == dict(spec[f.name].metadata), f.name


def test_no_choice_list_is_written_out_twice():
    """A tuple, list or set of the same strings as a constant of sfrdask.choices, anywhere else in
    the package, is a second declaration of that choice list."""
    values = {frozenset(v): name for name, v in CHOICE_LISTS.items()}
    repeated = []
    for path, tree in _sources().items():
        if path.name == "choices.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2:
                items = [getattr(e, "value", None) for e in node.elts]
                if all(isinstance(v, str) for v in items) and frozenset(items) in values:
                    name = values[frozenset(items)]
                    repeated.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {items} (choices.{name})")
    assert not repeated, "choice lists written out again:\n" + "\n".join(repeated)


def test_every_option_with_choices_offers_a_declared_list():
    """``choices=`` of every stage option is one of sfrdask.choices' constants (or, for a list of
    a format's own, a constant of the module that acts on it), never a literal."""
    literal = []
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            for kw in getattr(node, "keywords", []) if isinstance(node, ast.Call) else []:
                if kw.arg == "choices" and not isinstance(kw.value, ast.Name | ast.Attribute):
                    literal.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not literal, f"choices given as literals: {literal}"


def test_the_check_finds_a_repeated_list(tmp_path, monkeypatch):
    """The scan above fails on a copy: proven on a module that repeats SPLITS."""
    (tmp_path / "copy.py").write_text('SPLITS = ("test", "train", "validation")\n')
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path)
    with pytest.raises(AssertionError, match=r"copy.py:1: .*choices.SPLITS"):
        test_no_choice_list_is_written_out_twice()


def test_the_check_finds_a_setting_declared_twice(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text('x = setting("train.epochs", "cap")\n' * 16)
    (tmp_path / "b.py").write_text("".join(f'y{i} = setting("k{i}")\n' for i in range(30)))
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path)
    with pytest.raises(AssertionError, match=r"'train.epochs': \['a.py:1', 'a.py:2'"):
        test_each_setting_is_declared_by_one_call()
