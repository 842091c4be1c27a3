"""Who may do what on NATS: one identity per service, one per support platform, one for operators.

A service may publish only its own outputs, rejections and dead letters (`subjects` names them),
bind and acknowledge only its own durable consumers, and declare (create, update, read) the
pinworks streams, which every service does at start. A support platform may only submit on its
own subject, read its own outcome consumer and watch its own outcomes (`platform_permissions`).
The operator may do everything. Replies reach each identity on an inbox prefix of its own
(`inbox_prefix`), so no identity reads another's replies; no identity answers requests, so none
needs `allow_responses`. The nats-server of `make run`, `pinworks chaos` and the test session
(`pinworks_devtools.nats_security`) and of `docker compose up`
(`pinworks_common.deployment_secrets`) are configured from `authorization()`; the Helm chart
renders the same matrix from `chart_matrix()` (a test compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass

from pinworks_contracts.subjects import (
    ASSIST_HANDLER,
    ASSIST_REQUESTED,
    CLASSIFIED,
    DRAFTED,
    ESCALATION_REQUESTED,
    OUTCOME_WATCH_STREAM,
    OUTCOMES_STREAM,
    QUALITY_SAMPLE,
    ROUTED_PREFIX,
    ROUTER_POLICY_BUCKET,
    STREAM_SUBJECTS,
    TICKETS_STREAM,
    WORK_STREAM,
    OutcomeStatus,
    Stage,
    dead_letter_subject,
    outcome_status_subjects,
    platform_outcome_subjects,
    specialist_consumer,
    submission_subject,
)

SERVICES: tuple[str, ...] = ("classifier", "router", "specialists", "verifier", "escalation")
"""The pipeline services, each with an identity of the same name."""
OPERATOR = "operator"
"""People and tools that administer the platform (`pinworks policy apply`, streams, replays)."""
DEFAULT_PLATFORM = "support"
"""The support platform identity `make run` generates (its seed is what `.run/env` exports)."""
AUTOMATED_HANDLERS: tuple[str, ...] = ("template", "kb", "llm_small", "llm_frontier")
"""Specialist handlers with a consumer of their own (`specialist-<handler>`)."""

JS_API = "$JS.API"


def inbox_prefix(identity: str) -> str:
    """The reply-subject prefix of `identity` (`NATS_INBOX_PREFIX`): `_INBOX_<identity>`."""
    return f"_INBOX_{identity}"


def platform_consumer(platform: str) -> str:
    """The durable consumer through which support platform `platform` reads outcomes."""
    return f"outcomes-{platform}"


@dataclass(frozen=True)
class Permissions:
    """Subjects an identity may publish to and subscribe on (NATS wildcards allowed)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _stream_declare(stream: str) -> list[str]:
    """Declaring (create or update) and reading one stream, as every service does at start."""
    return [f"{JS_API}.STREAM.{verb}.{stream}" for verb in ("CREATE", "UPDATE", "INFO")]


def _pull_consumer(stream: str, durable: str, *, create: bool = True) -> list[str]:
    """Binding to a durable pull consumer: (create,) info, fetch, and acknowledge its messages."""
    created = [f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
               f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",
               f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}"] if create else []
    return [*created,
            f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>"]


def _kv(bucket: str, *, write_keys: str | None) -> list[str]:
    """Reading (get and watch) one key-value bucket, and writing `write_keys` of it."""
    stream = f"KV_{bucket}"
    read = [f"{JS_API}.STREAM.INFO.{stream}", f"{JS_API}.STREAM.CREATE.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}", f"{JS_API}.DIRECT.GET.{stream}.>",
            f"{JS_API}.STREAM.MSG.GET.{stream}",
            f"{JS_API}.CONSUMER.CREATE.{stream}", f"{JS_API}.CONSUMER.CREATE.{stream}.>",
            f"{JS_API}.CONSUMER.INFO.{stream}.>", f"{JS_API}.CONSUMER.DELETE.{stream}.>",
            f"$JS.FC.{stream}.>"]
    return read + ([f"$KV.{bucket}.{write_keys}"] if write_keys else [])


def _service_publish(stage: Stage, *subjects: str) -> list[str]:
    return [*subjects, dead_letter_subject(stage), f"{JS_API}.INFO",
            *(rule for stream in (*STREAM_SUBJECTS, OUTCOME_WATCH_STREAM)
               for rule in _stream_declare(stream))]


def _services() -> dict[str, tuple[list[str], list[str]]]:
    """(publish, subscribe) of each service, before its inbox."""
    rejected = outcome_status_subjects(OutcomeStatus.REJECTED)
    specialist_durables = [specialist_consumer(h) for h in (*AUTOMATED_HANDLERS, ASSIST_HANDLER)]
    return {
        "classifier": (
            [*_service_publish(Stage.CLASSIFIER, CLASSIFIED, rejected),
             *_pull_consumer(TICKETS_STREAM, Stage.CLASSIFIER)], []),
        "router": (
            [*_service_publish(Stage.ROUTER, f"{ROUTED_PREFIX}.*", ESCALATION_REQUESTED, rejected),
             *_pull_consumer(WORK_STREAM, Stage.ROUTER),
             *_kv(ROUTER_POLICY_BUCKET, write_keys="replicas.>")], []),
        "specialists": (
            [*_service_publish(Stage.SPECIALIST, DRAFTED, f"{ROUTED_PREFIX}.*",
                               ESCALATION_REQUESTED, rejected),
             *(rule for durable in specialist_durables
               for rule in _pull_consumer(WORK_STREAM, durable))], []),
        "verifier": (
            [*_service_publish(Stage.VERIFIER, outcome_status_subjects(OutcomeStatus.RESOLVED),
                               ESCALATION_REQUESTED, rejected),
             *_pull_consumer(WORK_STREAM, Stage.VERIFIER)], []),
        "escalation": (
            [*_service_publish(Stage.ESCALATION, outcome_status_subjects(OutcomeStatus.ESCALATED),
                               outcome_status_subjects(OutcomeStatus.RESOLVED), rejected,
                               ASSIST_REQUESTED, CLASSIFIED, dead_letter_subject(Stage.AGENT),
                               dead_letter_subject(QUALITY_SAMPLE)),
             *_pull_consumer(WORK_STREAM, Stage.ESCALATION),
             *_pull_consumer(OUTCOMES_STREAM, QUALITY_SAMPLE)], []),
    }


def outcome_watch_create(platform: str) -> str:
    """Creating a short-lived watcher of `platform`'s own outcomes (`pinworks submit`/`replay`)
    on `OUTCOME_WATCH_STREAM`: the extended create subject names the filter, which nats-server
    pins to the request's `filter_subject` (error 10131 otherwise), so the grant reaches no other
    platform's outcomes; and no durable consumer lives on that stream, so it cannot reconfigure
    one (on the outcomes stream itself it could move a durable's filter)."""
    return (f"{JS_API}.CONSUMER.CREATE.{OUTCOME_WATCH_STREAM}.*."
            f"{platform_outcome_subjects(platform)}")


def platform_permissions(platform: str) -> Permissions:
    """A support platform: submit tickets on its own submission subject only (which is how the
    classifier knows who submitted), read outcomes through its own durable consumer (created by
    an operator; the platform cannot create or reconfigure it), and watch its own outcomes
    through ephemeral push consumers filtered to them, delivered to its own inbox."""
    return Permissions(
        publish=(submission_subject(platform), f"{JS_API}.INFO",
                 *_pull_consumer(OUTCOMES_STREAM, platform_consumer(platform), create=False),
                 outcome_watch_create(platform)),
        subscribe=(f"{inbox_prefix(platform)}.>",))


OPERATOR_PERMISSIONS = Permissions(publish=(">",), subscribe=(">",))
"""Operators administer everything on the platform's NATS: streams, consumers, the policy KV."""


def permissions(identity: str) -> Permissions:
    """The permissions of a service (`SERVICES`), of `OPERATOR`, or else of the support platform
    named `identity`."""
    if identity == OPERATOR:
        return OPERATOR_PERMISSIONS
    services = _services()
    if identity in services:
        publish, subscribe = services[identity]
        return Permissions(tuple(publish), (*subscribe, f"{inbox_prefix(identity)}.>"))
    return platform_permissions(identity)


PLATFORM_PLACEHOLDER = "__PLATFORM__"
"""Stands for a support platform's name in `chart_matrix()` (the chart substitutes each)."""


def user_permissions(identity: str) -> dict[str, dict[str, list[str]]]:
    """`permissions(identity)` as a nats-server `authorization.users[].permissions` block."""
    allowed = permissions(identity)
    return {"publish": {"allow": list(allowed.publish)},
            "subscribe": {"allow": list(allowed.subscribe)}}


def authorization(public_keys: dict[str, str], timeout: float = 5) -> dict[str, object]:
    """nats-server's `authorization` block: each identity (name -> public nkey) an nkey user
    with its permissions; nobody else may connect."""
    users = [{"nkey": key, "permissions": user_permissions(name)}
             for name, key in public_keys.items()]
    return {"timeout": timeout, "users": users}


def chart_matrix() -> dict[str, object]:
    """The matrix as the Helm chart reads it (`files/nats-permissions.json`): the services' and
    the operator's permissions, and a support platform's with `PLATFORM_PLACEHOLDER` for its
    name."""
    return {"identities": {name: user_permissions(name) for name in (*SERVICES, OPERATOR)},
            "platform": user_permissions(PLATFORM_PLACEHOLDER),
            "placeholder": PLATFORM_PLACEHOLDER}
