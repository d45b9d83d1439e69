"""dsdeploy: plan, cost, launch and measure DeepSeek deployments on your own hardware.

Layers (data flows one way, see docs/architecture.md):
catalog -> specs -> estimators -> planner -> edges (cli, reports, engines, serve, bench, validate).
"""

__version__ = "0.1.0"
