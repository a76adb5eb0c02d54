"""The registry: specs gathered per plugin, attributed, sorted, and checked."""

from __future__ import annotations

import pytest

from sigdl_core import hookimpl
from sigdl_core.errors import BadInputError, DuplicateNameError, PluginError, UnknownNameError
from sigdl_core.interfaces import DatasetSpec, FrameworkSpec, ModelSpec, TargetSpec


def _target(name: str) -> TargetSpec:
    return TargetSpec(name=name, title=name, emulator="none", cores=1, clock_hz=1e9,
                      memory_bytes=2**30, memory_bandwidth=1e9, peak_ops={"fp32": 1e9}, tdp_w=1.0)


class Boards:
    def __init__(self, *names: str) -> None:
        self.names = names

    @hookimpl
    def sigdl_targets(self):
        return [_target(n) for n in self.names]


class ReturnsGarbage:
    @hookimpl
    def sigdl_targets(self):
        return ["not a spec"]


class Raises:
    @hookimpl
    def sigdl_targets(self):
        raise RuntimeError("boom")


class WrongArguments:
    @hookimpl
    def sigdl_stage_started(self, stage, not_an_argument):
        pass


def test_specs_are_attributed_and_sorted(sigdl_plugins) -> None:
    loaded = sigdl_plugins(("boards_b", Boards("zeta", "alpha")), ("boards_a", Boards("mid")))
    assert loaded.registry.names("target") == ["alpha", "mid", "zeta"]
    assert loaded.registry.get("target", "alpha").source == "boards_b"
    assert loaded.registry.get("target", "mid").source == "boards_a"


def test_duplicate_name_names_both_plugins(sigdl_plugins) -> None:
    with pytest.raises(DuplicateNameError) as err:
        sigdl_plugins(("first", Boards("x")), ("second", Boards("x")))
    line = err.value.one_line()
    assert "'x'" in line and "'first'" in line and "'second'" in line
    tolerant = sigdl_plugins(("first", Boards("x")), ("second", Boards("x")), tolerate_conflicts=True)
    assert tolerant.registry.get("target", "x").source == "first"
    assert len(tolerant.registry.conflicts) == 1


class Zoo:
    """A framework ``fw`` that registers the given model names."""

    def __init__(self, fw: str, *models: str, preference: int = 0) -> None:
        self.fw, self.models, self.preference = fw, models, preference

    @hookimpl
    def sigdl_frameworks(self):
        return [FrameworkSpec(self.fw, self.fw, factory=lambda: None, preference=self.preference)]

    @hookimpl
    def sigdl_models(self):
        return [ModelSpec(m, self.fw, m, (1, 28, 28), 10, 1) for m in self.models]


def test_two_frameworks_may_register_one_model_name(sigdl_plugins) -> None:
    loaded = sigdl_plugins(("zoo_a", Zoo("a", "net", "only-a")), ("zoo_b", Zoo("b", "net", preference=-1)))
    registry = loaded.registry
    assert registry.names("model") == ["net", "only-a"]
    assert [(s.name, s.framework) for s in registry.specs("model")] == [("net", "a"), ("net", "b"), ("only-a", "a")]
    assert registry.get("model", "net", framework="b").source == "zoo_b"
    assert registry.get("model", "net").framework == "a"  # the higher preference
    assert registry.get("model", "only-a").framework == "a"
    with pytest.raises(BadInputError, match="not one of framework 'b'"):
        registry.get("model", "only-a", framework="b")
    with pytest.raises(UnknownNameError):
        registry.get("model", "nothing")
    tied = sigdl_plugins(("zoo_a", Zoo("a", "net")), ("zoo_b", Zoo("b", "net"))).registry
    with pytest.raises(BadInputError, match="registered by frameworks a, b"):
        tied.get("model", "net")
    with pytest.raises(DuplicateNameError):
        sigdl_plugins(("zoo_a", Zoo("a", "net")), ("zoo_c", Zoo("a", "net")))


@pytest.mark.parametrize("bad, words", [(ReturnsGarbage(), "expected a list of TargetSpec"),
                                         (Raises(), "boom"),
                                         (WrongArguments(), "not_an_argument")])
def test_a_plugin_breaking_the_contract_is_isolated(sigdl_plugins, bad, words) -> None:
    loaded = sigdl_plugins(("bad", bad), ("good", Boards("ok-board")))
    record = loaded.record("bad")
    assert record.state == "failed" and words in record.error
    assert loaded.registry.names("target") == ["ok-board"]
    assert loaded.record("good").state == "ok"


def test_strict_mode_raises_on_a_failed_plugin() -> None:
    from sigdl_core.plugins import load_plugins

    with pytest.raises(PluginError, match="'bad' failed"):
        load_plugins(entry_points=False, extra=[("bad", Raises())], strict=True)


def test_unknown_names_suggest_the_closest(sigdl_plugins) -> None:
    loaded = sigdl_plugins(("boards", Boards("jetson-tx2", "atom-x5-e3930")))
    with pytest.raises(UnknownNameError) as err:
        loaded.registry.get("target", "jetson-tx1")
    assert "did you mean 'jetson-tx2'" in err.value.one_line()


def test_dataset_arguments_are_checked(sigdl_plugins) -> None:
    class Datasets:
        @hookimpl
        def sigdl_datasets(self):
            return [DatasetSpec("plain", "no argument", loader=lambda a, s: ("plain", a)),
                    DatasetSpec("folder", "needs DIR", loader=lambda a, s: ("folder", a), argument="DIR")]

    registry = sigdl_plugins(("datasets", Datasets())).registry
    assert registry.load_dataset("plain") == ("plain", None)
    assert registry.load_dataset("folder:/data/x:y") == ("folder", "/data/x:y")
    with pytest.raises(BadInputError, match="takes no argument"):
        registry.load_dataset("plain:x")
    with pytest.raises(BadInputError, match="needs DIR"):
        registry.load_dataset("folder")


def test_the_manager_fixture_holds_only_the_specs(sigdl_plugin_manager) -> None:
    from sigdl_core import hookspecs

    assert sigdl_plugin_manager.get_plugins() == set()
    names = {n for n in dir(sigdl_plugin_manager.hook) if n.startswith("sigdl_")}
    assert names == set(hookspecs.REGISTRATION_HOOKS.values()) | set(hookspecs.LIFECYCLE_HOOKS)


def test_factories_run_on_first_use_only_and_once(sigdl_plugins) -> None:
    from sigdl_core.interfaces import CompressionResult, Compressor, CompressorSpec, Emulator, EmulatorSpec

    built: list[str] = []

    class Identity(Compressor):
        name = "identity"

        def compress(self, weights, kinds, params, previous=None):
            return CompressionResult(weights=dict(weights))

    class Nothing(Emulator):
        name = "nothing"

        def emulate(self, onnx_path, target, data, options=None):
            raise AssertionError("not called here")

    def make(kind, cls):
        def factory():
            built.append(kind)
            return cls()
        return factory

    class Parts:
        @hookimpl
        def sigdl_compressors(self):
            return [CompressorSpec("identity", "keeps weights", factory=make("compressor", Identity), role="other")]

        @hookimpl
        def sigdl_emulators(self):
            return [EmulatorSpec("nothing", "emulates nothing", factory=make("emulator", Nothing))]

    registry = sigdl_plugins(("parts", Parts())).registry
    assert built == [] and registry.names("compressor") == ["identity"]
    assert registry.compressor("identity") is registry.compressor("identity")
    assert isinstance(registry.emulator("nothing"), Nothing)
    assert built == ["compressor", "emulator"]
    assert registry.get("compressor", "identity").source == "parts"
