"""A model builder named in the config, called in process: what it receives, and the one line each
unusable builder gets (Hydra's lookup errors read back into kx's own)."""

import pytest

from kx.models import builder
from kx.models.builder import ModelError
from kx.sagemaker import job_request

NOT_A_FUNCTION = [1, 2]


def received(input_shape, num_classes, **kwargs):
    """Everything a builder is given, to compare with what the config said."""
    return {"input_shape": input_shape, "num_classes": num_classes, **kwargs}


def failing(input_shape, num_classes):
    raise ValueError("width must be even")


class Nets:
    pass


def build(cfg, key="builder", check=lambda net: None):
    return builder.build(cfg.model, key, [8, 8, 1], 10, check)


@pytest.mark.parametrize("path", ["tests.test_model_builder:received", "tests.test_model_builder.received"])
def test_kwargs_arrive_as_plain_python_values(compose_cfg, path):
    cfg = compose_cfg(
        "model=custom",
        f"model.builder={path}",
        "model.kwargs={width:64,filters:[8,16],act:{name:relu},epochs:${train.epochs}}",
        "+model.kwargs.head={_target_:mypkg.Head}",
    )
    got = build(cfg)
    assert got == {
        "input_shape": (8, 8, 1),
        "num_classes": 10,
        "width": 64,
        "filters": [8, 16],
        "act": {"name": "relu"},
        "epochs": cfg.train.epochs,
        "head": {"_target_": "mypkg.Head"},  # the builder's own value: Hydra does not build it
    }
    assert [type(got[k]) for k in ("input_shape", "filters", "act", "head")] == [tuple, list, dict, dict]


def test_the_built_in_models_are_builders_too(compose_cfg):
    cfg = compose_cfg("model=resnet")
    cfg.model.builder = "tests.test_model_builder:received"
    assert build(cfg)["filters"] == [32, 64]


@pytest.mark.parametrize(
    "path, line",
    [
        ("build", "model.builder='build' is not an import path like mypkg.nets:build."),
        (
            "tests..nets:build",
            "model.builder='tests..nets:build' is not an import path like mypkg.nets:build.",
        ),
        ("mypkg:", "model.builder='mypkg:' is not an import path like mypkg.nets:build."),
        (
            "tests.nowhere:build",
            "model.builder='tests.nowhere:build': cannot import tests.nowhere (No module named 'tests.nowhere').",
        ),
        (
            "tests.nowhere.build",
            "model.builder='tests.nowhere.build': cannot import tests.nowhere (No module named 'tests.nowhere').",
        ),
        (
            "tests.test_model_builder:nothing",
            "model.builder='tests.test_model_builder:nothing': tests.test_model_builder has no function nothing.",
        ),
        (
            "tests.test_model_builder:Nets.resnet",
            "model.builder='tests.test_model_builder:Nets.resnet': tests.test_model_builder has no function "
            "Nets.resnet.",
        ),
        (
            "tests.test_model_builder:NOT_A_FUNCTION",
            "model.builder='tests.test_model_builder:NOT_A_FUNCTION': Hydra will not call it: Expected a "
            "callable target, got '[1, 2]' of type 'list'",
        ),
        (
            "tests.test_model_builder:failing",
            "model.builder='tests.test_model_builder:failing' raised ValueError: width must be even",
        ),
    ],
)
def test_an_unusable_builder_is_one_line(compose_cfg, path, line):
    with pytest.raises(ModelError) as err:
        build(compose_cfg("model=custom", f"model.builder={path}"))
    assert str(err.value) == line


def test_a_target_hydra_refuses_is_refused_in_one_line(compose_cfg):
    with pytest.raises(ModelError) as err:
        build(compose_cfg("model=custom", "model.builder=os:remove"))
    assert str(err.value).startswith(
        "model.builder='os:remove': Hydra will not call it: Target 'os.remove' is"
    )
    assert "\n" not in str(err.value) and "full_key" not in str(err.value)


@pytest.mark.parametrize(
    "source, reason",
    [
        ("import kx_absent_dependency\n", "No module named 'kx_absent_dependency'"),
        ("def build(input_shape, num_classes):\n    return (\n", "SyntaxError: "),
    ],
)
def test_a_module_that_fails_to_import_is_named_with_the_reason(
    compose_cfg, tmp_path, monkeypatch, source, reason
):
    (tmp_path / "user_nets.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError) as err:
        build(compose_cfg("model=custom", "model.builder=user_nets:build"))
    assert str(err.value).startswith(f"model.builder='user_nets:build': cannot import user_nets ({reason}")


def test_a_wrong_result_is_named_by_the_backends_check(compose_cfg):
    cfg = compose_cfg("model=custom", "model.builder=tests.test_model_builder:received")
    with pytest.raises(ModelError) as err:
        build(cfg, check=lambda net: f"returned {type(net).__name__}, not a keras.Model")
    assert (
        str(err.value) == "model.builder='tests.test_model_builder:received' returned dict, not a keras.Model"
    )


def test_a_backend_needs_its_own_builder(compose_cfg):
    cfg = compose_cfg("model=custom", "model.builder=tests.test_model_builder:received")
    with pytest.raises(
        ModelError, match=r"^model=custom names no model.gluon_builder, which this backend needs.$"
    ):
        build(cfg, key="gluon_builder")


@pytest.mark.parametrize("path", ["examples.mynets:build", "examples.mynets.build"])
def test_the_job_ships_a_builder_module_read_either_way(compose_cfg, path):
    with pytest.raises(job_request.LaunchError, match=r"and examples.mynets is outside it"):
        job_request.check_packaged(compose_cfg("model=custom", f"model.builder={path}").model)
    job_request.check_packaged(compose_cfg("model=custom", "model.builder=kx.models.resnet.keras_net").model)


def test_the_job_refuses_a_path_that_is_not_one_before_packaging(compose_cfg):
    with pytest.raises(ModelError, match=r"^model.gluon_builder='build' is not an import path like"):
        job_request.check_packaged(compose_cfg("model=custom", "model.gluon_builder=build").model)
