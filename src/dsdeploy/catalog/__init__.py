"""The catalog: hardware, models, weight formats, KV dtypes and engines, as validated data.

Data files live in `dsdeploy/catalog/data/` and are validated with pydantic when first loaded. A
user's own hardware (written by `dsdeploy doctor --save`) is merged from
`$DSDEPLOY_HOME/local-hardware.toml` (default `~/.config/dsdeploy/`), so `--cpu local` and
`--accelerator local` work like any catalog id.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from dsdeploy.catalog.schema import (
    Accelerator,
    CatalogModel,
    Checkpoint,
    Cpu,
    DramType,
    Engine,
    HardwareCatalog,
    KvDtype,
    Link,
    Storage,
    WeightFormat,
)
from dsdeploy.errors import UserError, unknown_id

DATA = resources.files("dsdeploy.catalog") / "data"


def user_home() -> Path:
    """Where user-level files (local hardware, calibration) live."""
    return Path(os.environ.get("DSDEPLOY_HOME", Path.home() / ".config" / "dsdeploy"))


def _read_toml(path) -> dict:
    with path.open("rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class Catalog:
    accelerators: dict[str, Accelerator]
    cpus: dict[str, Cpu]
    links: dict[str, Link]
    storage: dict[str, Storage]
    dram: dict[str, DramType]
    models: dict[str, CatalogModel]
    formats: dict[str, WeightFormat]
    kv_dtypes: dict[str, KvDtype]
    engines: dict[str, Engine]

    # -- lookups with helpful errors -------------------------------------------------------
    def accelerator(self, id_: str) -> Accelerator:
        return _lookup("accelerator", id_, self.accelerators)

    def cpu(self, id_: str) -> Cpu:
        return _lookup("cpu", id_, self.cpus)

    def link(self, id_: str) -> Link:
        return _lookup("link", id_, self.links)

    def format(self, id_: str) -> WeightFormat:
        return _lookup("weights format", id_, self.formats)

    def kv_dtype(self, id_: str) -> KvDtype:
        return _lookup("kv dtype", id_, self.kv_dtypes)

    def engine(self, id_: str) -> Engine:
        return _lookup("engine", id_, self.engines)

    def storage_class(self, id_: str) -> Storage:
        return _lookup("storage class", id_, self.storage)

    def model(self, id_: str) -> CatalogModel:
        key = id_.lower()
        if key in self.models:
            return self.models[key]
        for m in self.models.values():
            if key in (a.lower() for a in m.aliases):
                return m
        raise unknown_id("model", id_, list(self.models))

    def gguf_file_types(self) -> dict[str, str]:
        """GGUF general.file_type (llama.cpp's llama_ftype, as a string) → weight format id."""
        return {str(t): f.id for f in self.formats.values() if f.gguf_file_types for t in f.gguf_file_types.value}

    def model_config(self, id_: str) -> dict:
        m = self.model(id_)
        return json.loads((DATA / "models" / m.config).read_text())


def _lookup(kind: str, id_: str, table: dict):
    if id_ in table:
        return table[id_]
    if id_.lower() in table:
        return table[id_.lower()]
    raise unknown_id(kind, id_, list(table))


def _by_id(items) -> dict:
    out = {}
    for it in items:
        if it.id in out:
            raise ValueError(f"duplicate id {it.id!r}")
        out[it.id] = it
    return out


def _validate(kind: str, cls, raw):
    try:
        return [cls.model_validate(r) for r in raw]
    except ValidationError as exc:
        raise UserError(f"catalog {kind} data is invalid: {exc}") from None


@lru_cache(maxsize=4)
def load_catalog(home: str | None = None) -> Catalog:
    """Load and validate the packaged catalog, merged with the user's local hardware file."""
    hw_raw = _read_toml(DATA / "hardware.toml")
    local = Path(home) if home else user_home()
    local_file = local / "local-hardware.toml"
    if local_file.exists():
        try:
            extra = tomllib.loads(local_file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{local_file} is not valid TOML ({exc}); rerun `dsdeploy doctor --save`") from None
        for key in ("accelerator", "cpu"):
            ids = {e["id"] for e in extra.get(key, [])}
            hw_raw[key] = [e for e in hw_raw.get(key, []) if e["id"] not in ids] + extra.get(key, [])
    try:
        hw = HardwareCatalog.model_validate(hw_raw)
    except ValidationError as exc:
        raise UserError(f"hardware catalog is invalid: {exc}") from None
    models = _validate("model", CatalogModel, _read_toml(DATA / "models.toml")["model"])
    formats = _validate("format", WeightFormat, _read_toml(DATA / "formats.toml")["format"])
    kv = _validate("kv_dtype", KvDtype, _read_toml(DATA / "kv_dtypes.toml")["kv_dtype"])
    engines = _validate("engine", Engine, _read_toml(DATA / "engines.toml")["engine"])
    return Catalog(
        accelerators=_by_id(hw.accelerator),
        cpus=_by_id(hw.cpu),
        links=_by_id(hw.link),
        storage=_by_id(hw.storage),
        dram=_by_id(hw.dram),
        models=_by_id(models),
        formats=_by_id(formats),
        kv_dtypes=_by_id(kv),
        engines=_by_id(engines),
    )


@lru_cache(maxsize=1)
def load_checkpoints() -> dict[tuple[str, str], Checkpoint]:
    """data/checkpoints.toml: published pre-quantized checkpoints, by (model id, weight format)."""
    rows = _validate("checkpoint", Checkpoint, _read_toml(DATA / "checkpoints.toml")["checkpoint"])
    return {(c.model, c.weights): c for c in rows}
