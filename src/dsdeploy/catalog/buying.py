"""What a buyer can act on, as validated catalog data (data/buying.toml): the default SLOs a chat user
tolerates (MLPerf Inference's DeepSeek-R1 server scenario) and which accelerators can be bought in a
market under export controls, each with its source and date."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dsdeploy.errors import UserError, unknown_id

Status = Literal["sold", "licensed", "case-by-case", "controlled", "unconfirmed"]
BUYABLE: frozenset[str] = frozenset({"sold", "licensed"})


class DatedFigure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float = Field(gt=0)
    date: str = Field(min_length=1)
    source: str = Field(min_length=3)
    unconfirmed: bool = False
    note: str = ""

    def cite(self) -> str:
        return f"{self.source} ({self.date})" + (" UNCONFIRMED" if self.unconfirmed else "")


class Slo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    ttft_ms: DatedFigure
    tpot_ms: DatedFigure


class PartStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status
    date: str = Field(min_length=1)
    source: str = Field(min_length=3)
    unconfirmed: bool = False
    note: str = ""


class Market(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    rules: str
    date: str
    source: str
    parts: dict[str, PartStatus]

    def status(self, accelerator_id: str) -> PartStatus:
        """The accelerator's status here; one missing from the list is unconfirmed."""
        return self.parts.get(
            accelerator_id,
            PartStatus(status="unconfirmed", date=self.date, source=f"not in the {self.name} list (buying.toml)"),
        )

    def buyable(self, accelerator_id: str | None) -> bool:
        """CPUs (no accelerator) are not covered by these export rules."""
        return accelerator_id is None or self.status(accelerator_id).status in BUYABLE

    def why_not(self, market_id: str, accelerator_id: str) -> str:
        s = self.status(accelerator_id)
        return f"{accelerator_id} cannot be bought in {market_id} ({s.status}, {s.date}: {s.source})"


class BuyingCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slo: Slo
    market: dict[str, Market]

    def get_market(self, market_id: str) -> Market:
        if market_id not in self.market:
            raise unknown_id("market", market_id, list(self.market))
        return self.market[market_id]


@lru_cache(maxsize=1)
def load_buying() -> BuyingCatalog:
    from dsdeploy.catalog import DATA

    with (DATA / "buying.toml").open("rb") as fh:
        raw = tomllib.load(fh)
    try:
        return BuyingCatalog.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"catalog buying data (buying.toml) is invalid: {exc}") from None
