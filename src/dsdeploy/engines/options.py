"""Plan options for `dsdeploy deploy` and `dsdeploy doctor`: the planner's one options → deployment
path (`dsdeploy.planner.options`), with the memory plan the launch recipes need."""

from __future__ import annotations

from pathlib import Path

from dsdeploy.catalog import load_catalog
from dsdeploy.estimators.memory import MemoryPlan, Workload, plan_memory
from dsdeploy.planner.options import DeploymentOptions, build, options_from_plan_file, workload
from dsdeploy.specs.deployment import Deployment

PlanOptions = DeploymentOptions  # the name the engines, recipes and their tests use


def resolve(o: DeploymentOptions, home: str | None = None) -> tuple[Deployment, MemoryPlan, Workload]:
    """The deployment, its memory plan and its workload, as `dsdeploy plan` resolves them."""
    wl = workload(o)
    dep = build(o, load_catalog(home))
    return dep, plan_memory(dep, wl), wl


def from_plan_json(path: str | Path) -> DeploymentOptions:
    """Plan options from a JSON file (see `planner.options.options_from_plan`)."""
    return options_from_plan_file(path)
