"""The marker's help states the defaults the spec really takes: a marker with no keywords
builds the spec the table promises (``name`` and ``models`` default to the test's name and
the selected models, so the table says ``None`` for them)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.collect.marker import MARKER_ARGUMENTS, MARKER_KEYS, marker_doc
from pytest_modelopt.collect.spec import EvalSpec, EvalSpecError, build_spec

if TYPE_CHECKING:
    from pathlib import Path


def test_the_documented_defaults_are_the_specs_defaults(tmp_path: Path) -> None:
    spec = build_spec(
        {}, default_name="test_x", selected_models=["m"], test_dir=tmp_path, rootdir=tmp_path
    )
    for name, default in MARKER_ARGUMENTS:
        if name in ("name", "models"):
            continue
        assert getattr(spec, name) == ast.literal_eval(default), name
    assert spec.name == "test_x"
    assert spec.models == ("m",)


def test_the_help_names_every_keyword_once() -> None:
    doc = marker_doc()
    assert [doc.count(f"{name}=") for name in MARKER_KEYS] == [1] * len(MARKER_KEYS)


@pytest.mark.parametrize("agent", ["weather_agent", "a:b:c", "x:", ":forecaster", 3])
def test_an_agent_reference_must_name_module_and_attribute(tmp_path: Path, agent: object) -> None:
    with pytest.raises(EvalSpecError, match="agent must name an Agents SDK agent"):
        build_spec(
            {"agent": agent},
            default_name="test_x",
            selected_models=["m"],
            test_dir=tmp_path,
            rootdir=tmp_path,
        )


def test_an_agent_eval_takes_graders_without_a_prompt(tmp_path: Path) -> None:
    spec = build_spec(
        {
            "agent": "app.agents:triage",
            "graders": [
                {
                    "type": "string_check",
                    "name": "s",
                    "input": "{{ sample.output_text }}",
                    "reference": "x",
                    "operation": "eq",
                }
            ],
        },
        default_name="test_x",
        selected_models=["m"],
        test_dir=tmp_path,
        rootdir=tmp_path,
    )
    assert (spec.agent, spec.prompt, len(spec.graders)) == ("app.agents:triage", None, 1)


def _spec(tmp_path: Path, **kwargs: object) -> EvalSpec:
    return build_spec(
        kwargs, default_name="e", selected_models=["m"], test_dir=tmp_path, rootdir=tmp_path
    )


def test_a_sweep_is_one_spec_per_combination_with_its_own_name(tmp_path: Path) -> None:
    from pytest_modelopt.collect.spec import EvalParam, variants

    spec = build_spec(
        {
            "prompt": "p.yaml",
            "params": {"reasoning": {"summary": "auto"}, "temperature": 0},
            "sweep": {"reasoning.effort": ["low", "high"], "text.format": [{"type": "text"}]},
        },
        default_name="e",
        selected_models=["m"],
        test_dir=tmp_path,
        rootdir=tmp_path,
    )
    swept = variants(spec)
    assert [(s.name, s.params) for s in swept] == [
        (
            f"e[reasoning.effort={effort},text.format=text#0]",
            {
                "reasoning": {"summary": "auto", "effort": effort},
                "temperature": 0,
                "text": {"format": {"type": "text"}},
            },
        )
        for effort in ("low", "high")
    ]
    assert spec.params == {"reasoning": {"summary": "auto"}, "temperature": 0}  # not shared
    assert EvalParam(swept[0], "m").id == "m-reasoning.effort=low,text.format=text#0"
    assert swept[0].fingerprint["params"] != swept[1].fingerprint["params"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "p.yaml", "params": {"model": "x"}}, "params cannot set model"),
        ({"prompt": "p.yaml", "params": ["temperature"]}, "params must be a mapping"),
        ({"prompt": "p.yaml", "sweep": {"reasoning.effort": []}}, "must be a non-empty list"),
        ({"prompt": "p.yaml", "sweep": {"input": ["a"]}}, "sweep cannot vary 'input'"),
        ({"prompt": "p.yaml", "sweep": {"a..b": [1]}}, "is not a request path"),
        ({"prompt": "p.yaml", "sweep": ["low"]}, "sweep must map request paths"),
        ({"prompt": "p.yaml", "sweep": {"t": [0, 1, 0]}}, r"sweep\['t'\] lists 0 more than once"),
        ({"params": {"temperature": 0}}, "params= and sweep= shape the declared prompt"),
        ({"prompt": "p.yaml", "agent": "a:b", "sweep": {"t": [0]}}, "the agent's own"),
    ],
)
def test_bad_params_and_sweeps_are_refused(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(EvalSpecError, match=message):
        _spec(tmp_path, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agent": "app:a", "agent_api": "completions"}, "agent_api must be 'responses' or 'chat'"),
        ({"prompt": "p.yaml", "agent_api": "chat"}, "agent_api= chooses the API of an agent="),
    ],
)
def test_agent_api_is_checked(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(EvalSpecError, match=message):
        build_spec(
            kwargs,
            default_name="test_x",
            selected_models=["m"],
            test_dir=tmp_path,
            rootdir=tmp_path,
        )
    ok = build_spec(
        {"agent": "app:a", "agent_api": "chat"},
        default_name="test_x",
        selected_models=["m"],
        test_dir=tmp_path,
        rootdir=tmp_path,
    )
    assert (
        ok.agent_api,
        build_spec(
            {"agent": "app:a"},
            default_name="t",
            selected_models=["m"],
            test_dir=tmp_path,
            rootdir=tmp_path,
        ).agent_api,
    ) == ("chat", "responses")
