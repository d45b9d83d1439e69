"""The price catalog: purchase and rental prices, API price timelines, electricity, PUE, staff.

`data/prices.toml` holds the packaged figures; a user file (`--prices my.toml`) is merged over it key by
key and the result is validated with pydantic. Every amount carries a currency (USD or CNY), a date and a
source, and is marked `unconfirmed` when it is an estimate no source settles (as in hardware.toml).

`PriceBook` converts amounts into one reporting currency at a CNY-per-USD rate (the catalog's `[fx]`,
or `--fx-rate`). A malformed or partial file raises `UserError` naming the key and the expected unit.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dsdeploy.catalog import DATA
from dsdeploy.errors import UserError, unknown_id

CURRENCIES = ("USD", "CNY")


class _Dated(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float
    date: str = Field(min_length=1)
    source: str = Field(min_length=3)
    unconfirmed: bool = False
    note: str = ""

    @property
    def label(self) -> str:
        if self.unconfirmed or self.source.startswith("estimate"):
            return "unconfirmed"
        return "derived" if self.source.startswith("derived") else "quoted"  # a dated price, not a spec

    def cite(self) -> str:
        return f"{self.source} ({self.date})" + (" UNCONFIRMED" if self.label == "unconfirmed" else "")


class Price(_Dated):
    """An amount of money (≥ 0) in USD or CNY."""

    currency: Literal["USD", "CNY"]

    @field_validator("value")
    @classmethod
    def _nonneg(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must be ≥ 0")
        return v


class Figure(_Dated):
    """A dated, sourced non-money number (PUE, FTE, %, TB)."""


class SoldAs(BaseModel):
    """A part sold only as a larger unit (GB200/GB300: whole NVL72 racks): the unit's GPUs, price and cooling."""

    model_config = ConfigDict(extra="forbid")
    gpus: int = Field(ge=1)
    name: str
    cooling: Literal["air", "liquid"]
    cooling_source: str = Field(min_length=3)
    purchase: Price


class AcceleratorPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server: str
    purchase: Price
    rent_hour: Price | None = None
    sold_as: SoldAs | None = None


class ServerPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gpus_per_server: int = Field(ge=0)
    purchase: Price


class Purchase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purchase: Price


class SwitchPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ports: int = Field(ge=1)
    purchase: Price


class DramPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_gb: Price


class NvmePrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_tb: Price
    drive_tb: Figure


class ElectricityPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_kwh: Price


class Staff(BaseModel):
    model_config = ConfigDict(extra="forbid")
    salary: Price
    fte: Figure


class Maintenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pct: Figure


class Fx(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cny_per_usd: Figure


class ApiPeriod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    start: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    end: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    input_hit: Price | None = None
    input_miss: Price
    output: Price


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str
    pue: str
    api: str
    api_model: str
    storage: str


class PriceCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fx: Fx
    defaults: Defaults
    server: dict[str, ServerPrice]
    cpu: dict[str, Purchase]
    dram: dict[str, DramPrice]
    nvme: dict[str, NvmePrice]
    nic: dict[str, Purchase]
    switch: dict[str, SwitchPrice]
    cooling: dict[str, Purchase]
    electricity: dict[str, ElectricityPrice]
    pue: dict[str, Figure]
    staff: Staff
    maintenance: Maintenance
    api: dict[str, dict[str, ApiPeriod]]
    accelerator: dict[str, AcceleratorPrice]


# What each key means, for error messages: (section, field) → expected unit.
_MONEY = '{value = <number>, currency = "USD" | "CNY", date = "<when>", source = "<where from>"}'
_FIG = '{value = <number>, date = "<when>", source = "<where from>"}'
UNITS: dict[tuple[str, str], str] = {
    ("fx", "cny_per_usd"): f"CNY per USD as {_FIG}",
    ("accelerator", "purchase"): f"money per device as {_MONEY}",
    ("accelerator", "rent_hour"): f"money per GPU-hour as {_MONEY}",
    ("accelerator", "server"): 'a [server] class id (string), e.g. "hgx-8gpu"',
    ("server", "purchase"): f"money per server (host only) as {_MONEY}",
    ("server", "gpus_per_server"): "accelerators per server (integer ≥ 0)",
    ("cpu", "purchase"): f"money per CPU socket as {_MONEY}",
    ("dram", "per_gb"): f"money per GB of DRAM as {_MONEY}",
    ("nvme", "per_tb"): f"money per TB of SSD as {_MONEY}",
    ("nvme", "drive_tb"): f"TB per drive as {_FIG}",
    ("nic", "purchase"): f"money per network adapter as {_MONEY}",
    ("switch", "purchase"): f"money per switch as {_MONEY}",
    ("switch", "ports"): "ports per switch (integer ≥ 1)",
    ("cooling", "purchase"): f"money per server as {_MONEY}",
    ("electricity", "per_kwh"): f"money per kWh as {_MONEY}",
    ("pue", ""): f"dimensionless PUE (≥ 1) as {_FIG}",
    ("staff", "salary"): f"money per FTE-year as {_MONEY}",
    ("staff", "fte"): f"full-time equivalents as {_FIG}",
    ("maintenance", "pct"): f"percent of capex per year as {_FIG}",
    ("api", "input_hit"): f"money per 1M input tokens (cache hit) as {_MONEY}",
    ("api", "input_miss"): f"money per 1M input tokens (cache miss) as {_MONEY}",
    ("api", "output"): f"money per 1M output tokens as {_MONEY}",
    ("api", "start"): "a date YYYY-MM-DD",
    ("api", "end"): "a date YYYY-MM-DD",
    ("api", "model"): "the API's model name (string)",
    ("defaults", ""): "ids of the default region, pue, api provider, api model and storage class (strings)",
}
_KEYED = {"server", "cpu", "dram", "nvme", "nic", "switch", "cooling", "electricity", "accelerator"}


def _expected(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if not parts:
        return ""
    sec = parts[0]
    if sec in _KEYED:
        field = parts[2] if len(parts) > 2 else ""
    elif sec == "api":
        field = parts[3] if len(parts) > 3 else ""
    elif sec in ("pue", "defaults"):
        field = ""
    else:
        field = parts[1] if len(parts) > 1 else ""
    return UNITS.get((sec, field), "")


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors()[:6]:
        loc = tuple(err["loc"])
        key = ".".join(f'"{p}"' if isinstance(p, str) and ("-" in p or "." in p) else str(p) for p in loc)
        exp = _expected(loc)
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{key}: {msg}" + (f" (expected {exp})" if exp else ""))
    more = len(exc.errors()) - 6
    tail = f"; and {more} more" if more > 0 else ""
    return f"price file {origin} is invalid: " + "; ".join(lines) + tail


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


@lru_cache(maxsize=1)
def _packaged_raw() -> dict:
    with (DATA / "prices.toml").open("rb") as fh:
        return tomllib.load(fh)


def parse_prices(raw: dict, origin: str = "prices.toml") -> PriceCatalog:
    """Validate a merged price dict; errors name the key and the expected unit."""
    try:
        cat = PriceCatalog.model_validate(raw)
    except ValidationError as exc:
        raise UserError(_format_errors(exc, origin)) from None
    for name, fig in cat.pue.items():
        if fig.value < 1:
            raise UserError(
                f"price file {origin} is invalid: pue.{name}.value = {fig.value:g} (expected {UNITS[('pue', '')]})"
            )
    if cat.fx.cny_per_usd.value <= 0:
        raise UserError(f"price file {origin} is invalid: fx.cny_per_usd.value must be > 0 (expected CNY per USD)")
    for aid, a in cat.accelerator.items():
        if a.server not in cat.server:
            raise UserError(
                f"price file {origin} is invalid: accelerator.\"{aid}\".server = '{a.server}' is not a [server] class "
                f"(known: {', '.join(sorted(cat.server))})"
            )
    return cat


def load_prices(user_file: str | Path | None = None) -> PriceCatalog:
    """The packaged price catalog, with `user_file` (TOML) merged over it key by key."""
    raw = _packaged_raw()
    origin = "prices.toml (packaged)"
    if user_file is not None:
        p = Path(user_file)
        if not p.is_file():
            raise UserError(f"--prices {p}: no such file")
        try:
            over = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"--prices {p} is not valid TOML ({exc})") from None
        except UnicodeDecodeError:
            raise UserError(f"--prices {p} is not UTF-8 text") from None
        raw = _merge(raw, over)
        origin = f"{p} (merged over the packaged prices)"
    return parse_prices(raw, origin)


@dataclass(frozen=True)
class PriceBook:
    """Prices in one reporting currency. `fx` is CNY per USD."""

    catalog: PriceCatalog
    currency: str = "USD"
    fx: float = 7.2
    fx_source: str = ""

    @classmethod
    def build(cls, catalog: PriceCatalog, currency: str = "USD", fx_rate: float | None = None) -> PriceBook:
        cur = currency.upper()
        if cur not in CURRENCIES:
            raise UserError(f"--currency must be USD or CNY, not '{currency}'")
        if fx_rate is not None and fx_rate <= 0:
            raise UserError(f"--fx-rate must be > 0 CNY per USD (got {fx_rate:g})")
        fx = fx_rate if fx_rate is not None else catalog.fx.cny_per_usd.value
        src = "--fx-rate" if fx_rate is not None else catalog.fx.cny_per_usd.cite()
        return cls(catalog=catalog, currency=cur, fx=fx, fx_source=src)

    def convert(self, value: float, currency: str) -> float:
        """`value` in `currency` → the book's currency."""
        if currency == self.currency:
            return value
        return value * self.fx if currency == "USD" else value / self.fx

    def money(self, p: Price) -> float:
        return self.convert(p.value, p.currency)

    # -- lookups --------------------------------------------------------------------------
    def accelerator(self, acc_id: str) -> AcceleratorPrice:
        a = self.catalog.accelerator.get(acc_id)
        if a is None:
            raise UserError(
                f"no price for accelerator '{acc_id}' in the price catalog; add "
                f'[accelerator."{acc_id}"] with server = "..." and purchase = {_MONEY} to a --prices file'
            )
        return a

    def electricity(self, region: str) -> ElectricityPrice:
        e = self.catalog.electricity.get(region)
        if e is None:
            raise unknown_id("electricity region", region, list(self.catalog.electricity))
        return e

    def pue(self, name: str) -> Figure:
        f = self.catalog.pue.get(name)
        if f is None:
            raise unknown_id("PUE preset", name, list(self.catalog.pue))
        return f

    def cpu(self, cpu_id: str) -> Price:
        c = self.catalog.cpu.get(cpu_id) or self.catalog.cpu.get("default")
        if c is None:
            raise UserError(f"no price for CPU '{cpu_id}' and no [cpu.default] in the price catalog")
        return c.purchase

    def api_period(self, provider: str, model: str, date: str | None = None) -> tuple[str, ApiPeriod]:
        """The API price period in force on `date` (YYYY-MM-DD; default: the latest)."""
        table = self.catalog.api.get(provider)
        if table is None:
            raise unknown_id("API provider", provider, list(self.catalog.api))
        periods = sorted(((k, p) for k, p in table.items() if p.model == model), key=lambda kp: kp[1].start)
        if not periods:
            raise UserError(
                f"API provider '{provider}' has no prices for model '{model}' "
                f"(it has: {', '.join(sorted({p.model for p in table.values()}))})"
            )
        if date is None:
            return periods[-1]
        if not _is_date(date):
            raise UserError(f"--api-date must be YYYY-MM-DD, not '{date}'")
        chosen = None
        for k, p in periods:
            if p.start <= date and (p.end is None or date < p.end):
                chosen = (k, p)
        if chosen is None:
            raise UserError(
                f"no {provider} {model} price in force on {date}; the timeline starts {periods[0][1].start}"
            )
        return chosen


def _is_date(s: str) -> bool:
    import re

    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", s) is not None
