"""``tabguard monitor dashboard`` (the page and its JSON API) and ``monitor prometheus-rules``.

Exit codes: 0 stopped; 2 bad input (configuration, ``--open`` on a non-loopback interface,
a store that cannot be opened: one line); 3 internal error.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from tabguard.cli._app import console, err_console
from tabguard.cli._monitor import ConfigOption, HomeOption, load, monitor_app
from tabguard.errors import TabguardError


class DashboardUsageError(TabguardError, ValueError):
    """A dashboard option that cannot be honoured (names the option and the fix)."""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@monitor_app.command("dashboard")
def dashboard_cmd(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8050,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    open_access: Annotated[
        bool,
        typer.Option(
            "--open",
            help="Serve the data without an API key (only on a loopback interface). By default "
            "the API needs a key with the 'monitor' scope: tabguard keys create NAME --scopes "
            "monitor.",
        ),
    ] = False,
    config: ConfigOption = None,
    home: HomeOption = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "warning",
) -> None:
    """Serve the monitoring dashboard (docs/dashboard.md): charts of the bucket store."""
    import uvicorn

    from tabguard.monitoring._dashboard import open_dashboard
    from tabguard.monitoring._dashboard_app import create_dashboard_app, key_authorizer

    if open_access and not _loopback(host):
        raise DashboardUsageError(
            f"--open serves monitoring data without a key, so it binds only a loopback "
            f"interface; got --host {host!r} (drop --open and use an API key with the "
            "'monitor' scope)"
        )
    cfg = load(config, home)
    data = open_dashboard(cfg)
    if open_access:

        async def authorize(_: str | None) -> None:
            return None

        app = create_dashboard_app(data, authorize)
        access = "without a key (--open)"
    else:
        from tabguard.serving import load_config
        from tabguard.serving._keys import KeyCache
        from tabguard.serving._stores import open_keys

        keys = KeyCache(open_keys(load_config(cfg.home)))
        app = create_dashboard_app(data, key_authorizer(keys))
        access = "API key with the 'monitor' scope required"
    console.print(
        f"dashboard of {data.store.what} on http://{host}:{port}/dashboard/ ({access})",
        soft_wrap=True,
        markup=False,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        data.store.close()


@monitor_app.command("prometheus-rules")
def prometheus_rules_cmd(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the rule file here (default: print it)."),
    ] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Write Prometheus alerting rules equivalent to the rules of monitor.yaml."""
    from tabguard.monitoring._live import alerting_config
    from tabguard.monitoring._prometheus import prometheus_rules, to_yaml

    rules = prometheus_rules(alerting_config(load(config, home)))
    text = to_yaml(rules)
    if out is None:
        console.print(text, markup=False, soft_wrap=True, end="")
    else:
        out.write_text(text, encoding="utf-8")
        console.print(
            f"{len(rules.alerts)} alerting rules written to {out}"
            + (f"; left out: {', '.join(n for n, _ in rules.skipped)}" if rules.skipped else ""),
            markup=False,
            soft_wrap=True,
        )
    for name, reason in rules.skipped:
        err_console.print(f"left out {name}: {reason}", markup=False, soft_wrap=True)
