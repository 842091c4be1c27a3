"""What one package offers another through entry points, so that neither imports the other.

- `pinworks.cli`: a service's command group, mounted by the `pinworks` CLI. Name = the group
  (`classifier`, `policy`, `queue`, `agent`, ...), value = `module:typer_app`.
- `pinworks.asyncapi`: a service's `create_app` (name = the service), whose FastStream app
  `pinworks asyncapi` documents without connecting.
- `pinworks.offline_classifier`: `module:function` classifying a batch of tickets offline
  (`(tickets, artifact_dir) -> (classifications, model version)`), used by
  `pinworks policy simulate`.
- `pinworks.inprocess`: a factory (`() -> step`) of one stage's decisions on a batch of
  envelopes, without NATS or Postgres (name = `classify`, `route`, `template`, `verify`,
  `escalate`, `assist`); `pinworks bench` chains them into its in-process baseline.
A package that is not installed offers nothing: its commands are simply absent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinworks_contracts.messages import Classification, TicketEnvelope, TicketSubmission

COMMAND_GROUPS = "pinworks.cli"
ASYNCAPI_APPS = "pinworks.asyncapi"
OFFLINE_CLASSIFIER = "pinworks.offline_classifier"
INPROCESS_STEPS = "pinworks.inprocess"
INPROCESS_ORDER = ("classify", "route", "template", "verify", "escalate", "assist")

OfflineClassifier = Callable[[Sequence["TicketSubmission"], Path | None],
                             tuple[list["Classification"], str]]

InProcessStep = Callable[[Sequence["TicketEnvelope"]], list["TicketEnvelope"]]


class NotInstalled(LookupError):
    """No installed package offers what was asked for; the message says which to install."""


def command_groups() -> list[tuple[str, Any]]:
    """(name, typer app) of every installed command group, sorted by name."""
    found = sorted(entry_points(group=COMMAND_GROUPS), key=lambda entry: entry.name)
    return [(entry.name, entry.load()) for entry in found]


def app_factories() -> dict[str, Callable[[], Any]]:
    """Service name -> its `create_app`, for every installed service."""
    return {entry.name: entry.load() for entry in entry_points(group=ASYNCAPI_APPS)}


def offline_classifier() -> OfflineClassifier:
    """The installed offline classifier (there is one: the classifier service's)."""
    found = sorted(entry_points(group=OFFLINE_CLASSIFIER), key=lambda entry: entry.name)
    if not found:
        raise NotInstalled("no classifier is installed (entry point group "
                           f"{OFFLINE_CLASSIFIER}): install pinworks-classifier")
    classify: OfflineClassifier = found[0].load()
    return classify


def inprocess_steps() -> list[tuple[str, Callable[[], InProcessStep]]]:
    """(name, factory) of each in-process step, in pipeline order; every one must be installed."""
    found = {entry.name: entry for entry in entry_points(group=INPROCESS_STEPS)}
    missing = [name for name in INPROCESS_ORDER if name not in found]
    if missing:
        raise NotInstalled(f"no in-process step {', '.join(missing)} is installed (entry point "
                           f"group {INPROCESS_STEPS}): install every pinworks service")
    return [(name, found[name].load()) for name in INPROCESS_ORDER]
