"""The chart's NATS identities and TLS: the in-cluster NATS' users are exactly the permission
matrix of `pinworks_contracts.identities`, and every workload connects as its own identity with
its seed from a Secret (rendered through Helm's engine, as test_helm_chart does)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import nkeys
import pytest
import yaml

from pinworks_contracts.identities import (
    OPERATOR,
    SERVICES,
    chart_matrix,
    inbox_prefix,
    user_permissions,
)

from .test_helm_chart import (
    CHART_DIR,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    docs_of,
    env_of,
    kind,
    load_values,
    one,
    pod_spec,
    render_values,
)

IDENTITIES = (*SERVICES, OPERATOR)
PLATFORMS = ("support", "retail-web")


def public_key(index: int) -> str:
    """A real public nkey, the same in every run."""
    keypair = nkeys.from_seed(bytearray(nkeys.encode_seed(bytes([index]) * 32,
                                                          nkeys.PREFIX_BYTE_USER)))
    return bytes(keypair.public_key).decode()


KEYS = {name: public_key(i) for i, name in enumerate((*IDENTITIES, *PLATFORMS), start=1)}


UNITS = {"support": ["*"], "retail-web": ["retail", "retail-*"]}


def secured(base: str = "keda", **extra: Any) -> dict[str, Any]:
    values = copy.deepcopy(load_values(base))
    values["nats"] = {"enabled": True}
    values["natsAuth"] = {"publicKeys": {n: KEYS[n] for n in IDENTITIES},
                          "platforms": {n: KEYS[n] for n in PLATFORMS},
                          "platformUnits": copy.deepcopy(UNITS), **extra}
    values["natsTls"] = {"certManager": {"issuerRef": {"name": "pinworks-ca",
                                                       "kind": "ClusterIssuer"}}}
    return values


def auth_conf(docs: list[dict[str, Any]]) -> str:
    return one(docs, "Secret", f"{RELEASE}-nats-auth")["stringData"]["auth.conf"]


def users_of(conf: str) -> dict[str, Any]:
    key, _, value = conf.partition(":")
    assert key == "authorization"
    block = json.loads(value)
    assert block["timeout"] == 5
    return {user["nkey"]: user["permissions"] for user in block["users"]}


def test_the_chart_matrix_file_is_the_generators_output() -> None:
    shipped = json.loads((CHART_DIR / "files" / "nats-permissions.json").read_text())
    assert shipped == chart_matrix(), (
        "infra/helm/pinworks/files/nats-permissions.json differs from pinworks_contracts."
        "identities: regenerate it with `pinworks nats authorization --chart > "
        "infra/helm/pinworks/files/nats-permissions.json`")


def test_the_rendered_users_are_exactly_the_permission_matrix() -> None:
    users = users_of(auth_conf(docs_of(render_values(secured()))))
    expected = {KEYS[name]: user_permissions(name) for name in (*IDENTITIES, *PLATFORMS)}
    assert users == expected
    # a platform reads only its own outcomes consumer and inbox
    retail = users[KEYS["retail-web"]]
    assert retail["subscribe"]["allow"] == [f"{inbox_prefix('retail-web')}.>"]
    assert not any("outcomes-support" in s for s in retail["publish"]["allow"])


def test_the_schema_takes_keys_and_refuses_seeds() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = secured()
    values["natsAuth"]["publicKeys"]["router"] = [KEYS["router"], KEYS["support"]]
    jsonschema.validate(values, schema)
    values["natsAuth"]["publicKeys"]["router"] = "SUAJ" + "A" * 54  # a seed, never in values
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, schema)


def test_a_rotating_identity_is_admitted_with_both_keys() -> None:
    values = secured()
    values["natsAuth"]["publicKeys"]["router"] = [KEYS["router"], KEYS["support"]]
    values["natsAuth"]["platforms"] = {}
    users = users_of(auth_conf(docs_of(render_values(values))))
    assert users[KEYS["router"]] == users[KEYS["support"]] == user_permissions("router")


def test_every_deployment_connects_as_its_own_identity_from_a_secret() -> None:
    docs = docs_of(render_values(secured(seedSecrets={"router": "router-seed"})))
    deployments = kind(docs, "Deployment")
    assert {pod_spec(d)["containers"][0]["name"] for d in deployments} == set(SERVICES)
    for deployment in deployments:
        spec = pod_spec(deployment)
        container = spec["containers"][0]
        service, env = container["name"], env_of(container)
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        identity = volumes["nats-identity"]["secret"]
        assert identity["secretName"] == (
            "router-seed" if service == "router" else f"{FULLNAME}-nats-{service}")
        assert identity["items"] == [{"key": "nkey", "path": "nkey"}]
        assert mounts["nats-identity"]["readOnly"] is True
        seed_dir = mounts["nats-identity"]["mountPath"]
        assert env["NATS_NKEY"]["value"] == f"{seed_dir}/nkey"
        assert env["NATS_INBOX_PREFIX"]["value"] == inbox_prefix(service)
        ca = volumes["nats-ca"]["secret"]
        assert ca == {"secretName": f"{RELEASE}-nats-tls", "items": [{"key": "ca.crt",
                                                                        "path": "ca.crt"}]}
        assert env["NATS_TLS_CA"]["value"] == f"{mounts['nats-ca']['mountPath']}/ca.crt"
        assert not any(e.get("valueFrom", {}).get("secretKeyRef", {}).get("name", "")
                       .startswith(f"{FULLNAME}-nats-") for e in env.values())


def test_in_cluster_nats_wiring() -> None:
    """nats.enabled points the services and KEDA at the subchart's services."""
    docs = docs_of(render_values(secured()))
    cm = one(docs, "ConfigMap", f"{FULLNAME}-config")
    assert cm["data"]["NATS_URL"] == f"nats://pw-nats.{NAMESPACE}.svc:4222"
    for so in kind(docs, "ScaledObject"):
        for t in so["spec"]["triggers"]:
            assert t["metadata"]["natsServerMonitoringEndpoint"] == (
                f"pw-nats-headless.{NAMESPACE}.svc.cluster.local:8222"
            )


def test_the_server_certificate_covers_the_nats_service() -> None:
    docs = docs_of(render_values(secured()))
    [certificate] = kind(docs, "Certificate")
    assert certificate["spec"]["secretName"] == f"{RELEASE}-nats-tls"
    assert f"{RELEASE}-nats.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"] == {"name": "pinworks-ca", "kind": "ClusterIssuer",
                                                "group": "cert-manager.io"}


def test_the_nats_values_include_and_mount_the_rendered_authorization() -> None:
    """What the official nats chart does with its values (config.merge `$include`,
    container/podTemplate JSON patches, `$tplYaml` names), checked against what we render."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["nats"]
    include = values["config"]["merge"]["$include"]
    [mount] = [p["value"] for p in values["container"]["patch"] if p["path"] == "/volumeMounts/-"]
    [volume] = [p["value"] for p in values["podTemplate"]["patch"] if p["path"] == "/spec/volumes/-"]
    assert str(Path("/etc/nats-config", include).resolve()) == f"{mount['mountPath']}/auth.conf"
    assert mount["name"] == volume["name"]
    assert volume["secret"]["secretName"] == {"$tplYaml": "{{ .Release.Name }}-nats-auth"}
    assert values["config"]["nats"]["tls"] == {
        "enabled": True, "secretName": {"$tplYaml": "{{ .Release.Name }}-nats-tls"}}


def test_external_nats_without_tls_mounts_only_the_identity() -> None:
    docs = docs_of(render_values(load_values("defaults")))
    for deployment in kind(docs, "Deployment"):
        spec = pod_spec(deployment)
        assert "nats-ca" not in {v["name"] for v in spec["volumes"]}
        assert "NATS_NKEY" in env_of(spec["containers"][0])
    assert not [s for s in kind(docs, "Secret") if s["metadata"]["name"].endswith("-nats-auth")]


@pytest.mark.parametrize("change", [
    {"publicKeys": {n: KEYS[n] for n in IDENTITIES if n != "router"}},
    {"publicKeys": {**{n: KEYS[n] for n in IDENTITIES}, "router": "SUAM-not-a-public-key"}},
    {"enabled": False},
])
def test_in_cluster_nats_refuses_to_render_without_every_identity(change: dict[str, Any]
                                                                  ) -> None:
    values = secured()
    values["natsAuth"] = {**values["natsAuth"], **change}
    with pytest.raises(Exception, match="natsAuth"):
        render_values(values)


def test_nats_server_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    """The real nats-server parses the rendered block (config test, `-t`)."""
    from pinworks_devtools.embedded_nats import nats_server_binary

    (tmp_path / "auth.conf").write_text(auth_conf(docs_of(render_values(secured()))))
    (tmp_path / "nats.conf").write_text("port: -1\ninclude ./auth.conf\n")
    result = subprocess.run([str(nats_server_binary()), "-t", "-c", str(tmp_path / "nats.conf")],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pinworks_nats_keys_feed_the_chart_and_the_server_block(tmp_path: Path) -> None:
    """`pinworks nats keys` -> Secrets + values; the chart admits exactly those keys, and
    `pinworks nats authorization` prints the same users for a server of your own."""
    from typer.testing import CliRunner

    from pinworks_cli.main import app

    out = tmp_path / "keys"
    made = CliRunner().invoke(app, ["nats", "keys", "--out", str(out), "--fullname", FULLNAME,
                                    "--namespace", NAMESPACE, "--platform", "support",
                                    "--units", "support=retail,cards-*"])
    assert made.exit_code == 0, made.output
    assert json.loads((out / "values.yaml").read_text())["natsAuth"]["platformUnits"] == {
        "support": ["retail", "cards-*"]}
    for private in (*out.glob("*.nk"), out / "secrets.yaml"):
        assert private.stat().st_mode & 0o777 == 0o600
    publics = json.loads((out / "public-keys.json").read_text())
    secrets = {s["metadata"]["name"]: s for s in yaml.safe_load_all((out / "secrets.yaml")
                                                                     .read_text())}
    assert set(secrets) == {f"{FULLNAME}-nats-{service}" for service in SERVICES}
    for service in SERVICES:
        seed = secrets[f"{FULLNAME}-nats-{service}"]["stringData"]["nkey"].encode()
        assert seed == (out / f"{service}.nk").read_bytes().strip()
        keypair = nkeys.from_seed(bytearray(seed))
        assert bytes(keypair.public_key).decode() == publics[service]

    values = copy.deepcopy(load_values("keda"))
    values["nats"] = {"enabled": True}
    values.update(json.loads((out / "values.yaml").read_text()))
    users = users_of(auth_conf(docs_of(render_values(values))))
    assert users == {publics[name]: user_permissions(name) for name in publics}

    printed = CliRunner().invoke(app, ["nats", "authorization", "--public-keys",
                                       str(out / "public-keys.json")])
    assert printed.exit_code == 0, printed.output
    assert users_of(printed.output) == users


def classifier_env(values: dict[str, Any]) -> dict[str, Any]:
    [deployment] = [d for d in kind(docs_of(render_values(values)), "Deployment")
                    if pod_spec(d)["containers"][0]["name"] == "classifier"]
    return env_of(pod_spec(deployment)["containers"][0])


def test_each_platforms_business_units_reach_the_classifier(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """natsAuth.platformUnits is what the classifier binds each platform to: the rendered
    CLASSIFIER_PLATFORM_UNITS, read by the classifier's own settings, is the value given."""
    from pinworks_classifier.settings import ClassifierSettings

    rendered = classifier_env(secured())["CLASSIFIER_PLATFORM_UNITS"]["value"]
    monkeypatch.setenv("CLASSIFIER_PLATFORM_UNITS", rendered)
    assert ClassifierSettings().platform_units == UNITS
    jsonschema.validate(secured(), json.loads((CHART_DIR / "values.schema.json").read_text()))
    # without any binding the classifier keeps its default (make run's `support`, every unit)
    unbound = secured(platforms={}, platformUnits={})
    assert "CLASSIFIER_PLATFORM_UNITS" not in classifier_env(unbound)


@pytest.mark.parametrize(("change", "message"), [
    ({"platformUnits": {"support": ["*"]}}, "natsAuth.platformUnits.retail-web is missing"),
    ({"platformUnits": {"retail-web": ["retail"]}}, "natsAuth.platformUnits.support is missing"),
])
def test_every_platform_must_be_bound_to_its_units(change: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message):
        render_values(secured(**change))


def test_platform_units_are_set_in_one_place() -> None:
    values = secured()
    values.setdefault("classifier", {})["env"] = {"CLASSIFIER_PLATFORM_UNITS": '{"x": ["*"]}'}
    with pytest.raises(Exception, match="not both"):
        render_values(values)


@pytest.mark.parametrize("units", [[], [""], ["retail, cards"]])
def test_the_schema_refuses_an_empty_or_comma_joined_binding(units: list[str]) -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(secured(platformUnits={**UNITS, "support": units}), schema)


def test_the_in_cluster_nats_secures_its_routes_and_runs_no_nats_box() -> None:
    """Cluster routes are mutual TLS with the server certificate (which cert-manager issues
    for client auth too, and whose wildcard covers the FQDN route URLs), verified against the
    CA; the nats-box (no identity) is off; the NetworkPolicy's NATS pods are the servers only,
    so nothing else reaches port 6222 or counts as a NATS pod."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["nats"]
    tls_secret = {"$tplYaml": "{{ .Release.Name }}-nats-tls"}
    cluster = values["config"]["cluster"]
    assert cluster["enabled"] and cluster["tls"] == {"enabled": True, "secretName": tls_secret}
    assert cluster["routeURLs"] == {"useFQDN": True}
    assert values["tlsCA"] == {"enabled": True, "secretName": tls_secret, "key": "ca.crt"}
    assert values["natsBox"] == {"enabled": False}

    docs = docs_of(render_values(secured()))
    [certificate] = kind(docs, "Certificate")
    assert "client auth" in certificate["spec"]["usages"]
    assert f"*.{RELEASE}-nats-headless.{NAMESPACE}.svc.cluster.local" in \
        certificate["spec"]["dnsNames"]
    server_pods = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": RELEASE,
                   "app.kubernetes.io/component": "nats"}
    policy = one(docs, "NetworkPolicy", f"{RELEASE}-nats")
    assert policy["spec"]["podSelector"]["matchLabels"] == server_pods
    [routes] = [rule for rule in policy["spec"]["ingress"]
                if rule["ports"] == [{"port": 6222, "protocol": "TCP"}]]
    assert routes["from"] == [{"podSelector": {"matchLabels": server_pods}}]


def _cluster_node(tmp: Path, name: str, security: Any, routes: list[int], tls: bool = True,
                  ca_file: Path | None = None) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    """A nats-server whose cluster block is what the official chart renders from our values
    (files/config/cluster.yaml and tls.yaml with tlsCA): routes as tls:// URLs, the
    certificate, key and CA of the Secret."""
    from pinworks_devtools.embedded_nats import nats_server_binary
    from pinworks_devtools.processes import LOOPBACK, free_port

    route_port, monitor = free_port(), free_port()
    scheme = "tls" if tls else "nats"
    block = {"name": "pw-nats", "listen": f"{LOOPBACK}:{route_port}", "no_advertise": True,
             "routes": [f"{scheme}://localhost:{port}" for port in routes]}
    if tls:
        block["tls"] = {"cert_file": str(security.cert_file), "key_file": str(security.key_file),
                        "ca_file": str(ca_file or security.ca_file)}
    config = tmp / f"{name}.conf"
    config.write_text(f"server_name: {name}\nport: -1\nhttp_port: {monitor}\n"
                      f"cluster: {json.dumps(block)}\n")
    log = tmp / f"{name}.log"
    process = subprocess.Popen([str(nats_server_binary()), "-c", str(config), "-l", str(log)])
    return process, route_port, monitor, log


def _routes(monitor: int) -> list[str]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/routez", timeout=2) as answer:
        return [route.get("remote_name", "") for route in json.loads(answer.read())["routes"]]


def test_cluster_routes_admit_only_servers_with_the_certificate(tmp_path: Path) -> None:
    """The real nats-server with the route TLS the chart's values turn on: two servers holding
    the certificate form a route; one presenting a certificate of another CA (while trusting
    ours), or without TLS, is refused by nats-0 itself and never joins (routes bypass client
    authorization, so this is what keeps a pod out)."""
    from pinworks_devtools.nats_security import NatsSecurity
    from pinworks_devtools.processes import wait_until

    ours = NatsSecurity.ensure(tmp_path / "ours", platforms=())
    stranger = NatsSecurity.ensure(tmp_path / "stranger", platforms=())
    nodes = []
    try:
        first = _cluster_node(tmp_path, "nats-0", ours, [])
        nodes.append(first)
        second = _cluster_node(tmp_path, "nats-1", ours, [first[1]])
        nodes.append(second)

        def joined() -> bool:
            try:
                return set(_routes(first[2])) == {"nats-1"}  # a pool of route connections
            except OSError:
                return False

        wait_until(joined, timeout=30, what="the route between nats-0 and nats-1")
        # it trusts our CA (so it accepts nats-0's certificate) but presents one of its own
        foreign = _cluster_node(tmp_path, "intruder", stranger, [first[1]],
                                ca_file=ours.ca_file)
        plain = _cluster_node(tmp_path, "plaintext", stranger, [first[1]], tls=False)
        nodes += [foreign, plain]
        refusals = ("tls route handshake error: tls: failed to verify certificate: x509: "
                    "certificate signed by unknown authority",
                    "tls route handshake error: tls: first record does not look like a tls")

        def refused() -> bool:
            text = first[3].read_text().lower()
            return all(refusal in text for refusal in refusals)

        wait_until(refused, timeout=30, what="nats-0 refusing the foreign and the plain route")
        assert set(_routes(first[2])) == {"nats-1"}
    finally:
        for process, *_ in nodes:
            process.terminate()
            process.wait(timeout=15)
