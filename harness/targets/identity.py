"""What a server says it is: TGI's /info, or an OpenAI-compatible server's /v1/models.

The report names the model the server reports, never the one a scenario assumed, and the OpenAI
routes send the server's own model id unless the configuration names one (vLLM rejects a model it
does not serve; TGI takes any other name as an adapter id, so it gets its documented "tgi").
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


def get_json(url: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> Any:
    """GET a JSON document; None when the server is unreachable or does not answer JSON."""
    try:
        req = urllib.request.Request(url, headers=dict(headers or {}))
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


@dataclass
class Identity:
    info: dict[str, Any] | None = None  # TGI's /info
    models: list[str] = field(default_factory=list)  # ids from /v1/models

    @property
    def is_tgi(self) -> bool:
        return bool(self.info) and "model_id" in self.info and "max_total_tokens" in self.info

    @property
    def model_id(self) -> str | None:
        if self.info and self.info.get("model_id"):
            return str(self.info["model_id"])
        return self.models[0] if self.models else None

    def model_name_to_send(self, configured: str | None) -> str:
        if configured:
            return configured
        if self.is_tgi or not self.models:
            return "tgi"
        return self.models[0]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_id": self.model_id}


def identify(url: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> Identity:
    info = get_json(url + "/info", headers, timeout)
    models_doc = get_json(url + "/v1/models", headers, timeout)
    models: list[str] = []
    if isinstance(models_doc, dict) and isinstance(models_doc.get("data"), list):
        models = [str(m["id"]) for m in models_doc["data"] if isinstance(m, dict) and m.get("id")]
    return Identity(info=info if isinstance(info, dict) else None, models=models)
