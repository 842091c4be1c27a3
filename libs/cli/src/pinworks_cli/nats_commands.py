"""`pinworks nats …`: a deployment's NATS identities, from `pinworks_contracts.identities`.

`authorization` prints nats-server's `authorization` block for the given public keys (for a
NATS server of your own); with `--chart` it prints the matrix file the Helm chart renders the
in-cluster NATS' block from (`infra/helm/pinworks/files/nats-permissions.json`; a test keeps
the two equal). `keys` generates one nkey per identity: seed files, the Kubernetes Secrets the
chart mounts into each service, and the chart values with the public keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

nats_app = typer.Typer(help="NATS identities: keys, the server's authorization block.",
                       no_args_is_help=True)

PUBLIC_KEYS = "public-keys.json"


@nats_app.command("authorization")
def authorization(
    public_keys: Annotated[Path | None, typer.Option(
        "--public-keys", exists=True, dir_okay=False,
        help=f"JSON identity -> public nkey ({PUBLIC_KEYS} of `pinworks nats keys`).")] = None,
    chart: Annotated[bool, typer.Option(
        "--chart", help="Print the chart's permission matrix (files/nats-permissions.json).")
    ] = False,
) -> None:
    """Print the authorization block: every identity an nkey user with its permissions."""
    from pinworks_contracts.identities import authorization as block
    from pinworks_contracts.identities import chart_matrix

    if chart:
        typer.echo(json.dumps(chart_matrix(), indent=2))
        return
    if public_keys is None:
        raise typer.BadParameter("give --public-keys FILE (or --chart)")
    keys = json.loads(public_keys.read_text())
    missing = _missing(keys)
    if missing:
        raise typer.BadParameter(f"{public_keys}: no public key for {', '.join(missing)}")
    typer.echo(f"authorization: {json.dumps(block(keys), indent=2)}")


def _missing(keys: dict[str, str]) -> list[str]:
    from pinworks_contracts.identities import OPERATOR, SERVICES

    return [name for name in (*SERVICES, OPERATOR) if not keys.get(name)]


@nats_app.command("keys")
def keys(
    out: Annotated[Path, typer.Option("--out", file_okay=False,
                                      help="Directory for the seeds (mode 0600) and manifests.")],
    platform: Annotated[list[str] | None, typer.Option(
        "--platform", help="A support platform identity to make too (repeatable).")] = None,
    fullname: Annotated[str, typer.Option(
        help="The chart's fullname (release name, or <release>-pinworks).")] = "pinworks",
    namespace: Annotated[str, typer.Option(help="Namespace of the Secrets.")] = "pinworks",
    units: Annotated[list[str] | None, typer.Option(
        "--units", help="PLATFORM=UNIT[,UNIT...]: the business units a platform may submit for "
                        "(`*` every unit, `abc*` a prefix; repeatable). A platform without "
                        "--units is bound to every unit.")] = None,
) -> None:
    """New nkeys for every identity: seeds in OUT, `secrets.yaml` (one Secret per service,
    key `nkey`, as the chart mounts it) and `values.yaml` (natsAuth public keys, and each
    platform's business units as natsAuth.platformUnits)."""
    from pinworks_common.deployment_secrets import new_user_seed, public_key, write_private
    from pinworks_contracts.identities import OPERATOR, SERVICES

    bound = _units(units or [], platform or [])
    names = [*SERVICES, OPERATOR, *(platform or [])]
    seeds = {name: new_user_seed() for name in names}
    for name, seed in seeds.items():
        write_private(out / f"{name}.nk", seed + b"\n")
    publics = {name: public_key(seed) for name, seed in seeds.items()}
    (out / PUBLIC_KEYS).write_text(json.dumps(publics, indent=2) + "\n")
    secrets = [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": f"{fullname}-nats-{name}", "namespace": namespace},
                "stringData": {"nkey": seeds[name].decode()}} for name in SERVICES]
    write_private(out / "secrets.yaml", "---\n".join(
        json.dumps(secret, indent=2) + "\n" for secret in secrets).encode())
    values = {"natsAuth": {
        "publicKeys": {name: publics[name] for name in (*SERVICES, OPERATOR)},
        "platforms": {name: publics[name] for name in platform or []},
        "platformUnits": bound}}
    (out / "values.yaml").write_text(json.dumps(values, indent=2) + "\n")
    for name, given in bound.items():
        if given == ["*"]:
            typer.echo(f"platform {name} may submit for every business unit; bind it with "
                       f"--units {name}=UNIT,... or natsAuth.platformUnits in values.yaml")
    typer.echo(f"wrote {len(seeds)} seeds, {out / 'secrets.yaml'} (kubectl apply -f; keep it "
               f"private) and {out / 'values.yaml'} (helm -f) in {out}")


def _units(given: list[str], platforms: list[str]) -> dict[str, list[str]]:
    """`--units PLATFORM=UNIT,...` for each platform (`*` when not given)."""
    bound: dict[str, list[str]] = {}
    for entry in given:
        name, sep, listed = entry.partition("=")
        units = [unit.strip() for unit in listed.split(",") if unit.strip()]
        if not sep or name not in platforms or not units:
            raise typer.BadParameter(f"{entry!r}: give PLATFORM=UNIT[,UNIT...] for a --platform",
                                     param_hint="--units")
        bound[name] = units
    return {name: bound.get(name, ["*"]) for name in platforms}
