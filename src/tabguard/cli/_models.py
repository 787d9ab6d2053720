"""``tabguard models promote|rollback|status``: the live and shadow models of running services.

The commands rewrite ``$TABGUARD_HOME/models.json`` atomically; every serving process of that
home picks the change up within ``[server] model_interval`` seconds, without a restart. A
directory that fails verification is refused (exit 2) and nothing changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tabguard.cli._app import HomeOption, app, console

models_app = typer.Typer(
    help="Promote a model to shadow or live in running services, roll back (no restart).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

ByOption = Annotated[
    str | None, typer.Option("--by", help="Who does it (default: the OS user).", show_default=False)
]


def _stage(value: str) -> str:
    from tabguard.errors import DataError
    from tabguard.serving._deploy import STAGES

    if value not in STAGES:
        raise DataError(f"--stage {value!r}: must be one of {', '.join(STAGES)}")
    return value


@models_app.command("promote")
def promote_cmd(
    model_dir: Annotated[
        Path, typer.Argument(help="A model directory (e.g. from tabguard retrain).")
    ],
    stage: Annotated[
        str,
        typer.Option(help="shadow: scored beside the live model, logged; live: decides."),
    ] = "shadow",
    home: HomeOption = None,
    by: ByOption = None,
) -> None:
    """Verify MODEL_DIR and make it the shadow or the live model of the running services."""
    from tabguard.serving._deploy import pointer_path, promote

    entry, _dep = promote(model_dir, _stage(stage), home=home, by=by)  # type: ignore[arg-type]
    console.print(
        f"{stage}: {entry['model_version']} ({entry['path']}, manifest sha256 "
        f"{entry['digest'][:16]}…, {entry['signature']}); services of {pointer_path(home).parent} "
        "pick it up within [server] model_interval",
        markup=False,
        soft_wrap=True,
    )


@models_app.command("rollback")
def rollback_cmd(
    stage: Annotated[
        str, typer.Option(help="live: back to the previous live model; shadow: stop shadowing.")
    ] = "live",
    home: HomeOption = None,
    by: ByOption = None,
) -> None:
    """Undo the last live promotion, or stop shadow scoring."""
    from tabguard.serving._deploy import rollback

    now, _dep = rollback(_stage(stage), home=home, by=by)  # type: ignore[arg-type]
    if stage == "shadow":
        console.print("shadow: none (shadow scoring stops)", markup=False)
    elif now is None:
        console.print("live: the model each service was started with", markup=False)
    else:
        console.print(
            f"live: {now['model_version']} ({now['path']}, manifest sha256 {now['digest'][:16]}…)",
            markup=False,
            soft_wrap=True,
        )


@models_app.command("status")
def status_cmd(
    home: HomeOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {pointer, live, shadow, history} as JSON.")
    ] = False,
) -> None:
    """Show the deployment pointer: live, shadow and the last changes."""
    from tabguard.serving._deploy import pointer_path, read_deployment

    path = pointer_path(home)
    dep = read_deployment(path)
    live = dep.current
    if as_json:
        import json

        body = {"pointer": str(path), "live": live, "shadow": dep.shadow, "history": dep.history}
        console.print_json(json.dumps(body))
        return
    console.print(f"pointer  {path}", markup=False)
    console.print(
        "live     "
        + (f"{live['model_version']} {live['path']} ({live['digest'][:16]}…)" if live else
           "the model each service was started with"),
        markup=False,
        soft_wrap=True,
    )  # fmt: skip
    sh = dep.shadow
    console.print(
        "shadow   "
        + (f"{sh['model_version']} {sh['path']} ({sh['digest'][:16]}…)" if sh else "none"),
        markup=False,
        soft_wrap=True,
    )
    for h in dep.history[-10:]:
        console.print(
            f"  {h['at']}  {h['action']:8s} {h['stage']:6s} {h.get('model_version')}  by {h['by']}",
            markup=False,
        )
