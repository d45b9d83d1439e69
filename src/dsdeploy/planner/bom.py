"""Bill of materials for a deployment, and the cost report built on it (BOM → power → energy → TCO →
cost per token vs the API and renting). No I/O: prices come in as a `PriceBook`.

BOM rules (each line says where its price comes from)
- Accelerators: count × purchase price. Unified-memory computers (Mac Studio, DGX Spark): the price is the
  whole machine. Parts sold only as a larger unit (prices.toml `sold_as`; GB200/GB300): whole NVL72 racks,
  ⌈GPUs / 72⌉ × the rack price, with the rack's own (liquid) cooling.
- Server/host: one per node, of the accelerator's `server` class (prices.toml); a workstation class
  holding fewer GPUs than a node has becomes a PCIe GPU server. CPU-only and experts-on-CPU /
  layer-split deployments with --cpu: a CPU-server chassis + sockets × CPU price.
- DRAM: --dram-gb if given, else ≥ 2 × the node's accelerator memory (rule of thumb: a DGX H100 has
  2 TB for 640 GB of GPU memory), rounded up to 64 GB; at $/GB of the DRAM type.
- NVMe: room for 2 copies of the weights + 1 TB, in whole drives, per node.
- NICs and a switch only when multi-node: one scale-out NIC per accelerator (DGX H100: 8 × 400 Gb/s,
  facts.md §2b) and ⌈ports / switch ports⌉ switches.
- Cooling: per server, by the rack-density guidance (estimators/power.py): air → no extra line; liquid →
  the cooling price per server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dsdeploy.catalog import Catalog
from dsdeploy.catalog.prices import Price, PriceBook
from dsdeploy.errors import UserError
from dsdeploy.estimators import cost as C
from dsdeploy.estimators import power as P
from dsdeploy.estimators.memory import MemoryPlan, Workload
from dsdeploy.estimators.storage import MMAP_ENGINES, LoadTime, load_time
from dsdeploy.specs.deployment import DEFAULT_DRAM_GB_PER_SOCKET, Deployment

GB = 1e9


@dataclass(frozen=True)
class BomLine:
    item: str
    spec: str
    unit_price: float
    qty: float
    label: str  # "quoted <date>" (a dated price) | derived | unconfirmed
    source: str

    @property
    def subtotal(self) -> float:
        return self.unit_price * self.qty

    def to_dict(self) -> dict:
        return {
            "item": self.item,
            "spec": self.spec,
            "unit_price": round(self.unit_price, 2),
            "qty": self.qty,
            "subtotal": round(self.subtotal, 2),
            "label": self.label,
            "source": self.source,
        }


@dataclass
class Bom:
    lines: list[BomLine]
    currency: str
    servers: int
    server_class: str
    dram_gb_per_node: float
    nvme_drives_per_node: int
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.subtotal for line in self.lines)


def _line(book: PriceBook, item: str, spec: str, p: Price, qty: float) -> BomLine:
    label = f"quoted {p.date}" if p.label == "quoted" else p.label
    return BomLine(item=item, spec=spec, unit_price=book.money(p), qty=qty, label=label, source=p.cite())


def server_layout(dep: Deployment, book: PriceBook) -> tuple[str, int]:
    """(server class, servers in total) for a deployment."""
    if dep.accelerator is None or dep.placement == "cpu":
        return "cpu-server", dep.nodes
    if dep.placement in ("experts-on-cpu", "layer-split") and dep.cpu is not None:
        return "cpu-server", dep.nodes
    if dep.accelerator.unified_memory:
        return "included", max(1, dep.devices)
    cls = book.accelerator(dep.accelerator.id).server
    srv = book.catalog.server[cls]
    if cls == "workstation" and dep.per_node > srv.gpus_per_server:
        cls, srv = "pcie-gpu-server", book.catalog.server["pcie-gpu-server"]
    per = srv.gpus_per_server or dep.per_node or 1
    return cls, dep.nodes * max(1, math.ceil(max(1, dep.per_node) / per))


# CPU TDP when the plan names no CPU (the planner then assumes a desktop, see performance.DEFAULT_CPU):
# 125 W, Intel's Processor Base Power for the Core i9-13900K/14900K (ark.intel.com). UNCONFIRMED for
# any particular machine.
DEFAULT_CPU_TDP_W = 125.0


def default_dram_gb(dep: Deployment) -> tuple[float, str]:
    if dep.dram_gb:
        return float(dep.dram_gb), "stated (--dram-gb)"
    if dep.accelerator is None:
        return DEFAULT_DRAM_GB_PER_SOCKET * dep.cpu_sockets, f"assumed {DEFAULT_DRAM_GB_PER_SOCKET:g} GB per socket"
    gpu_gb = dep.accelerator.memory_gb.value * max(1, dep.per_node)
    gb = max(64.0, math.ceil(2 * gpu_gb / 64) * 64)
    return gb, "estimate: ≥ 2 × GPU memory per node (DGX H100: 2 TB for 640 GB), unconfirmed"


def _accelerator_lines(dep: Deployment, book: PriceBook, acc) -> list[BomLine]:
    """Devices × price; a part sold only as a larger unit (prices.toml `sold_as`: GB200/GB300 NVL72) is
    bought in whole units: ⌈devices / unit GPUs⌉ × the unit's price."""
    if acc is None:
        return []
    ap = book.accelerator(acc.id)
    if ap.sold_as is not None:
        units = math.ceil(max(1, dep.devices) / ap.sold_as.gpus)
        return [_line(book, "accelerator", ap.sold_as.name, ap.sold_as.purchase, units)]
    whole = " (whole computer)" if acc.unified_memory else ""
    return [_line(book, "accelerator", acc.name + whole, ap.purchase, max(1, dep.devices))]


def _cooling(dep: Deployment, book: PriceBook, pw, pa: P.PowerAssumptions) -> P.CoolingGuidance:
    """What the unit ships with (sold_as), else guidance by rack density."""
    return sold_as_cooling(dep, book) or P.cooling_guidance(pw.per_server_max_kw, pw.servers, pa.servers_per_rack)


def sold_as_cooling(dep: Deployment, book: PriceBook) -> P.CoolingGuidance | None:
    """The cooling a part sold as a whole unit ships with (NVL72: liquid only), or None."""
    if dep.accelerator is None or dep.placement != "gpu":
        return None
    unit = book.accelerator(dep.accelerator.id).sold_as
    if unit is None:
        return None
    units = math.ceil(max(1, dep.devices) / unit.gpus)
    rack_kw = unit.gpus * dep.accelerator.tdp_w.value / 1e3
    return P.CoolingGuidance(
        kind=f"{unit.cooling}-unit",
        rack_kw=rack_kw,
        servers_per_rack=1,
        racks=units,
        text=f"{units} × {unit.name}: ships {unit.cooling}-cooled only; ≥ {rack_kw:,.0f} kW of GPUs per rack "
        "(the CDU and facility water loop are not costed)",
        source=unit.cooling_source,
    )


def _server_lines(dep: Deployment, book: PriceBook, cls: str, servers: int) -> list[BomLine]:
    if cls == "cpu-server":
        sp = book.catalog.server["cpu-server"]
        cpu_id = dep.cpu.id if dep.cpu else "default"
        cpu_name = dep.cpu.name if dep.cpu else "server CPU (not specified)"
        return [
            _line(book, "server", "CPU server chassis, board, PSUs (excl. CPUs, DRAM)", sp.purchase, servers),
            _line(book, "cpu", cpu_name, book.cpu(cpu_id), dep.cpu_sockets * servers),
        ]
    if cls == "included":
        return []
    sp = book.catalog.server[cls]
    return [_line(book, "server", f"{cls} host (chassis, CPUs, board, PSUs)", sp.purchase, servers)]


def _dram_line(dep: Deployment, book: PriceBook, servers: int) -> tuple[BomLine, float]:
    dram_gb, why = default_dram_gb(dep)
    dtype = dep.dram.type if dep.dram else (dep.cpu.default_dram.split("-")[0] if dep.cpu else "ddr5")
    dp = book.catalog.dram.get(dtype)
    if dp is None:  # no price for this memory type: price it as DDR5 and say so
        dp = book.catalog.dram["ddr5"]
        why += f"; no {dtype} price, priced as DDR5"
    line = _line(
        book, "dram", f"{dtype.upper()} host memory, {dram_gb:g} GB per server ({why})", dp.per_gb, dram_gb * servers
    )
    return line, dram_gb


def _nvme_line(book: PriceBook, weights_bytes: int, storage_class: str, servers: int) -> tuple[BomLine, int]:
    """Room for 2 copies of the weights + 1 TB, in whole drives, per server."""
    nv = book.catalog.nvme.get(storage_class)
    if nv is None:
        raise UserError(
            f"no NVMe price for storage class '{storage_class}' (known: {', '.join(sorted(book.catalog.nvme))})"
        )
    need_tb = 2 * weights_bytes / 1e12 + 1.0
    drives = max(1, math.ceil(need_tb / nv.drive_tb.value))
    drive_price = Price(
        value=nv.per_tb.value * nv.drive_tb.value,
        currency=nv.per_tb.currency,
        date=nv.per_tb.date,
        source=f"derived: {nv.drive_tb.value:g} TB × {nv.per_tb.value:g} {nv.per_tb.currency}/TB ({nv.per_tb.source})",
        unconfirmed=nv.per_tb.unconfirmed or nv.drive_tb.unconfirmed,
    )
    spec = f"{storage_class} {nv.drive_tb.value:g} TB drive (2 copies of {weights_bytes / GB:,.0f} GB weights + 1 TB)"
    return _line(book, "nvme", spec, drive_price, drives * servers), drives


def _network_lines(dep: Deployment, book: PriceBook, acc) -> list[BomLine]:
    """Multi-node: one scale-out NIC per accelerator and ⌈ports / switch ports⌉ switches."""
    if dep.nodes <= 1:
        return []
    link = dep.scale_out.id if dep.scale_out else "ib-ndr"
    nic = book.catalog.nic.get(link)
    sw = book.catalog.switch.get(link)
    if nic is None or sw is None:
        raise UserError(
            f'no NIC/switch price for scale-out link \'{link}\'; add [nic."{link}"] and [switch."{link}"] to --prices'
        )
    ports = max(1, dep.per_node) * dep.nodes if acc is not None else dep.nodes
    return [
        _line(book, "nic", f"{link} adapter, one per accelerator", nic.purchase, ports),
        _line(book, "switch", f"{link} switch, {sw.ports} ports", sw.purchase, math.ceil(ports / sw.ports)),
    ]


def build_bom(
    dep: Deployment, weights_bytes: int, book: PriceBook, cooling_kind: str = "air", storage_class: str = "nvme-gen4"
) -> Bom:
    notes: list[str] = []
    cls, servers = server_layout(dep, book)
    acc = dep.accelerator if dep.placement != "cpu" else None
    unified = acc is not None and acc.unified_memory
    lines = _accelerator_lines(dep, book, acc) + _server_lines(dep, book, cls, servers)
    dram_gb, drives = 0.0, 0
    if (
        cls == "included"
    ):  # e.g. GB200/GB300 NVL: the per-GPU rack price includes Grace, its LPDDR5X and the trays' drives
        notes.append(
            f"{acc.name if acc else cls}: host CPU, memory and local drives are in the rack price; no DRAM or NVMe lines"
        )
    elif not unified:
        dram_line, dram_gb = _dram_line(dep, book, servers)
        nvme_line, drives = _nvme_line(book, weights_bytes, storage_class, servers)
        lines += [dram_line, nvme_line]
    lines += _network_lines(dep, book, acc)
    if cooling_kind in ("liquid", "liquid-facility"):  # "liquid-unit": in the unit's price (sold_as)
        cp = book.catalog.cooling["liquid"].purchase
        spec = "direct-to-chip liquid cooling per server (+ facility loop, not costed)"
        lines.append(_line(book, "cooling", spec, cp, servers))
    return Bom(
        lines=lines,
        currency=book.currency,
        servers=servers,
        server_class=cls,
        dram_gb_per_node=dram_gb,
        nvme_drives_per_node=drives,
        notes=notes,
    )


def deployment_power(dep: Deployment, servers: int, a: P.PowerAssumptions = P.PowerAssumptions()) -> P.PowerDraw:
    acc = dep.accelerator if dep.placement != "cpu" else None
    if acc is not None and acc.unified_memory:
        return P.unified_power(acc.tdp_w.value, max(1, dep.devices), a)
    if acc is None or (dep.placement in ("experts-on-cpu", "layer-split") and dep.cpu is not None):
        cpu_tdp = dep.cpu.tdp_w.value if dep.cpu else DEFAULT_CPU_TDP_W
        return P.cpu_host_power(
            cpu_tdp,
            dep.cpu_sockets,
            servers,
            accel_tdp_w=acc.tdp_w.value if acc else 0.0,
            accels=max(1, dep.per_node) if acc else 0,
            a=a,
        )
    per_server = max(1, math.ceil(dep.devices / servers))
    return P.gpu_server_power(acc.tdp_w.value, per_server, servers, a)


@dataclass(frozen=True)
class CostOptions:
    years: float = 3.0
    utilization: float = 0.5
    pue: float | None = None  # None: the catalog default preset
    pue_preset: str | None = None
    electricity_price: float | None = None  # in the book's currency per kWh
    region: str | None = None
    staff_fte: float | None = None
    salary: float | None = None  # book currency per FTE-year
    maintenance_pct: float | None = None
    api_provider: str | None = None
    api_model: str | None = None
    api_date: str | None = None
    api_cache_hit: float = 0.0
    storage_class: str | None = None
    drives: int | None = None
    raid0: bool = True

    def validate(self) -> None:
        if self.years <= 0:
            raise UserError(f"--years must be > 0 (got {self.years:g})")
        if not 0 < self.utilization <= 1:
            raise UserError(
                f"--utilization must be a fraction in (0, 1] of the time the hardware is busy (got {self.utilization:g})"
            )
        if self.pue is not None and self.pue < 1:
            raise UserError(f"--pue must be ≥ 1 (got {self.pue:g})")
        for name, v in (
            ("--electricity-price", self.electricity_price),
            ("--staff-fte", self.staff_fte),
            ("--salary", self.salary),
            ("--maintenance-pct", self.maintenance_pct),
        ):
            if v is not None and v < 0:
                raise UserError(f"{name} must be ≥ 0 (got {v:g})")
        if not 0 <= self.api_cache_hit <= 1:
            raise UserError(f"--api-cache-hit must be in [0, 1] (got {self.api_cache_hit:g})")
        if self.drives is not None and self.drives < 1:
            raise UserError(f"--drives must be ≥ 1 (got {self.drives})")


def api_model_for(model_id: str) -> str:
    """DeepSeek API model that serves the same (or, for distills, the parent) model."""
    m = model_id.lower()
    if "v3" in m or "v2" in m or "coder" in m:
        return "deepseek-chat"
    return "deepseek-reasoner"


def predict_throughput(dep: Deployment, wl: Workload, calibration=None):
    """The performance model's prediction, or None if it is not installed (lazy import)."""
    try:
        from dsdeploy.estimators.performance import predict
    except ImportError:
        return None
    return predict(dep, wl, calibration)


def _throughput(throughput: float | None, perf, no_speed: str | None) -> tuple[float, str]:
    """(output tok/s while busy, its label): stated, predicted, or none for a deployment that does not run."""
    if no_speed is not None:
        return 0.0, f"none: {no_speed}"
    if throughput is not None:
        if throughput <= 0:
            raise UserError(f"--throughput must be > 0 output tokens/s (got {throughput:g})")
        return throughput, "stated (--throughput)"
    if perf is not None:
        return perf.output_tok_s_total, f"{perf.label} (performance model)"
    raise UserError(
        "no throughput: the performance model is not available; pass --throughput TOK_S (output tokens/s, all users)"
    )


@dataclass(frozen=True)
class _Running:
    pue: float
    pue_src: str
    kwh_price: float
    kwh_src: str
    fte: float
    salary: float
    maint: float


def _running(book: PriceBook, opts: CostOptions) -> _Running:
    """PUE, electricity price, staff and maintenance: stated, else the price catalog's defaults."""
    cat_p = book.catalog
    if opts.pue is not None:
        pue, pue_src = opts.pue, "stated (--pue)"
    else:
        f = book.pue(opts.pue_preset or cat_p.defaults.pue)
        pue, pue_src = f.value, f"{opts.pue_preset or cat_p.defaults.pue}: {f.cite()}"
    if opts.electricity_price is not None:
        kwh_price, kwh_src = opts.electricity_price, "stated (--electricity-price)"
    else:
        region = opts.region or cat_p.defaults.region
        e = book.electricity(region)
        kwh_price, kwh_src = book.money(e.per_kwh), f"{region}: {e.per_kwh.cite()}"
    return _Running(
        pue=pue,
        pue_src=pue_src,
        kwh_price=kwh_price,
        kwh_src=kwh_src,
        fte=opts.staff_fte if opts.staff_fte is not None else cat_p.staff.fte.value,
        salary=opts.salary if opts.salary is not None else book.money(cat_p.staff.salary),
        maint=opts.maintenance_pct if opts.maintenance_pct is not None else cat_p.maintenance.pct.value,
    )


def _rent(dep: Deployment, book: PriceBook) -> tuple[float | None, str | None]:
    """The same accelerators rented on demand all year, and the rate's source (None: no rental price)."""
    if dep.accelerator is None or dep.placement == "cpu" or dep.accelerator.unified_memory:
        return None, None
    ap = book.accelerator(dep.accelerator.id)
    if ap.rent_hour is None:
        return None, None
    return C.rent_annual(dep.devices, book.money(ap.rent_hour)), ap.rent_hour.cite()


def _cold_start(
    catalog: Catalog, dep: Deployment, mem: MemoryPlan, opts: CostOptions, bom: Bom, storage_class: str
) -> LoadTime | None:
    sc = catalog.storage.get(storage_class)
    if sc is None:
        return None
    drives = opts.drives or bom.nvme_drives_per_node or 1
    host = None
    if dep.host_link is not None and dep.accelerator is not None and dep.placement == "gpu":
        host = dep.host_link.uni_gbs.value * max(1, dep.per_node)
    return load_time(
        mem.weights_bytes_total // max(1, dep.nodes) if dep.par.pp > 1 else mem.weights_bytes_total,
        sc.read_gbs.value,
        drives,
        raid0=opts.raid0,
        mmap=dep.engine.id in MMAP_ENGINES,
        host_link_gbs=host,
        drive_class=storage_class,
    )


def _cost_labels(book: PriceBook, opts: CostOptions, bom: Bom, run: _Running, api: str, rent_src: str | None) -> dict:
    cat_p = book.catalog
    labels = {
        "capex": _worst(line.label for line in bom.lines),
        "power": "derived (TDP × load fractions × system factor; fractions partly unconfirmed)",
        "pue": run.pue_src,
        "electricity_price": run.kwh_src,
        "staff": "stated"
        if opts.staff_fte is not None or opts.salary is not None
        else f"{cat_p.staff.salary.cite()}; {cat_p.staff.fte.cite()}",
        "maintenance_pct": "stated" if opts.maintenance_pct is not None else cat_p.maintenance.pct.cite(),
        "api": api,
        "fx": f"{book.fx:g} CNY/USD ({book.fx_source})",
    }
    if rent_src:
        labels["rent"] = rent_src
    return labels


COST_DEFINITIONS = {
    "cost_per_mtok_output": "local annual total / million output tokens per year (prompts' cost included)",
    "api_cost_per_mtok_output": "API charge per million output tokens of this workload, its input tokens included",
    "rent_cost_per_mtok_output": "same GPUs rented on demand 24/7 plus the same staff, per million output tokens",
    "breakeven_tokens_per_day": "output tokens per day above which owning costs less than the API",
}


def cost_report(
    catalog: Catalog,
    dep: Deployment,
    wl: Workload,
    mem: MemoryPlan,
    book: PriceBook,
    opts: CostOptions,
    throughput: float | None = None,
    perf=None,
    power_assumptions: P.PowerAssumptions = P.PowerAssumptions(),
    no_speed: str | None = None,
) -> dict:
    """Everything `dsdeploy cost --json` prints. `throughput` (output tok/s, all users) overrides `perf`.
    `no_speed` (why): price the hardware only, with no speed, cost per token or break-even (a
    deployment that does not load has no speed to price)."""
    opts.validate()
    cat_p = book.catalog
    tok_s, throughput_label = _throughput(throughput, perf, no_speed)
    # power and cooling
    cls, servers = server_layout(dep, book)
    pw = deployment_power(dep, servers, power_assumptions)
    cool = _cooling(dep, book, pw, power_assumptions)
    storage_class = opts.storage_class or cat_p.defaults.storage
    bom = build_bom(dep, mem.weights_bytes_total, book, cooling_kind=cool.kind, storage_class=storage_class)
    capex = bom.total
    run = _running(book, opts)
    provider = opts.api_provider or cat_p.defaults.api
    api_model = opts.api_model or api_model_for(dep.model_id)
    period_id, period = book.api_period(provider, api_model, opts.api_date)
    rent_year, rent_src = _rent(dep, book)
    inputs = C.TcoInputs(
        capex=capex,
        years=opts.years,
        kw_idle=pw.idle_kw,
        kw_load=pw.load_kw,
        utilization=opts.utilization,
        pue=run.pue,
        price_per_kwh=run.kwh_price,
        fte=run.fte,
        salary=run.salary,
        maintenance_pct=run.maint,
        output_tok_s=tok_s,
        input_len=wl.input_len,
        output_len=wl.output_len,
        api_out=book.money(period.output),
        api_in_miss=book.money(period.input_miss),
        api_in_hit=book.money(period.input_hit) if period.input_hit else None,
        api_cache_hit=opts.api_cache_hit,
        rent_per_year=rent_year,
    )
    t = C.tco(inputs)
    lt = _cold_start(catalog, dep, mem, opts, bom, storage_class)
    api_label = f"{provider} {api_model} period '{period_id}' from {period.start}: {period.output.cite()}"
    labels = {"throughput": throughput_label, **_cost_labels(book, opts, bom, run, api_label, rent_src)}
    r2 = lambda x: None if x is None else round(x, 4)  # noqa: E731
    speed = no_speed is None
    be = t.breakeven_output_tokens_per_day if speed else None
    return {
        "deployment": dep.describe(),
        "fits": mem.fits,
        "fit_reason": mem.reason,
        "currency": book.currency,
        "capex": round(capex, 2),
        "annual": t.annual.to_dict(),
        "power_kw": {**pw.to_dict(), "average_at_utilization": round(t.avg_kw, 3)},
        "energy_kwh_per_year": round(t.kwh_per_year, 1),
        "pue": run.pue,
        "electricity_price_per_kwh": run.kwh_price,
        "utilization": opts.utilization,
        "years": opts.years,
        "throughput_output_tok_s": round(tok_s, 3) if speed else None,
        "output_tokens_per_year": round(t.output_tokens_per_year),
        "cost_per_mtok_output": r2(t.cost_per_mtok_output),
        "cost_per_mtok_blended": r2(t.cost_per_mtok_blended),
        "api_cost_per_mtok_output": r2(t.api_cost_per_mtok_output),
        "api_cost_per_mtok_blended": r2(t.api_cost_per_mtok_blended),
        "api_price": {
            "provider": provider,
            "model": api_model,
            "period": period_id,
            "from": period.start,
            "input_miss": round(book.money(period.input_miss), 4),
            "output": round(book.money(period.output), 4),
            "input_hit": round(book.money(period.input_hit), 4) if period.input_hit else None,
            "cache_hit": opts.api_cache_hit,
        },
        "rent_cost_per_mtok_output": r2(t.rent_cost_per_mtok_output),
        "rent_annual": None if t.rent_annual is None else round(t.rent_annual, 2),
        "breakeven_tokens_per_day": None if be is None else round(be),
        "capacity_output_tokens_per_day": round(t.capacity_output_tokens_per_day) if speed else None,
        "bom": [line.to_dict() for line in bom.lines],
        "servers": bom.servers,
        "server_class": bom.server_class,
        "storage_load": lt.to_dict() if lt else None,
        "cooling": {**cool.to_dict(), "notes": cool.notes},
        "performance": perf.to_dict() if perf is not None and throughput is None and speed else None,
        "labels": labels,
        "unconfirmed": [f"{line.item}: {line.source}" for line in bom.lines if line.label == "unconfirmed"],
        "notes": (t.notes if speed else []) + bom.notes,
        "definitions": COST_DEFINITIONS,
    }


def _worst(labels) -> str:
    ls = set(labels)
    return "unconfirmed" if "unconfirmed" in ls else ("derived" if "derived" in ls else "quoted")
