"""Negotiation advisors: a deterministic offline negotiator (default) and an OpenAI-compatible client.

Both answer `advise(prompt_type, context) -> Advice`. The HTTP client falls back to the built-in
advisor on any failure, so a negotiation never fails because an external model is down.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import requests

from . import metrics
from .config import Config

log = logging.getLogger(__name__)
BUILTIN_MODEL = "builtin-negotiator"
API_NAME = "llm"
# Label values of the llm_*/external_api_* series (zero-initialised for the configured model).
PROMPT_TYPES = ("opening", "counter", "chat")
ERROR_TYPES = ("timeout", "connection", "http_status", "invalid_response")
TOKEN_TYPES = ("prompt", "completion")


@dataclass
class Advice:
    content: str
    model: str
    llm_used: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    temperature: float | None = None
    metadata: dict = field(default_factory=dict)


def _money(value: float) -> str:
    return f"${value:,.0f}"


class BuiltinAdvisor:
    """Rule-based negotiator: same context in, same advice out."""

    def advise(self, prompt_type: str, context: dict) -> Advice:
        fair = float(context["fair_value"])
        offer = float(context["dealer_offer"])
        target = float(context.get("target_price") or round(min(offer, fair * 0.97), -1))
        recommended = round(max(min(target, offer), fair * 0.9), -1)
        if prompt_type == "chat":
            text = self._chat(context.get("message", ""), fair, offer, recommended)
        elif offer <= fair:
            text = (
                f"The dealer's offer of {_money(offer)} is at or below our fair-value estimate of "
                f"{_money(fair)}. Accepting is reasonable; a final counter at {_money(recommended)} "
                "is optional."
            )
        else:
            text = (
                f"The dealer is at {_money(offer)}, {_money(offer - fair)} above fair value "
                f"({_money(fair)}). Counter at {_money(recommended)} "
                f"(round {context['round']} of {context['max_rounds']})."
            )
        return Advice(
            content=text,
            model=BUILTIN_MODEL,
            llm_used=False,
            metadata={"recommended_offer": recommended, "fair_value": fair},
        )

    @staticmethod
    def _chat(message: str, fair: float, offer: float, recommended: float) -> str:
        lowered = message.lower()
        if any(word in lowered for word in ("financ", "loan", "apr", "interest")):
            return (
                "Get pre-approved by your bank or credit union before talking financing, and negotiate the "
                "vehicle price first, separately from any monthly payment."
            )
        if any(word in lowered for word in ("trade", "trade-in")):
            return (
                "Negotiate the purchase price first and bring up the trade-in only once the price is agreed."
            )
        if any(word in lowered for word in ("price", "offer", "counter", "deal", "much")):
            return (
                f"The dealer is at {_money(offer)}; fair value is about {_money(fair)}. "
                f"A counter of {_money(recommended)} is well supported."
            )
        return (
            f"Current dealer offer: {_money(offer)}. Fair value: {_money(fair)}. Ask about the price, "
            "financing or trade-in for specific advice."
        )


class OpenAICompatibleAdvisor:
    """POST {base}/chat/completions; records external_api_* and llm_* metrics for every call."""

    def __init__(self, config: Config, fallback: BuiltinAdvisor):
        self.config = config
        self.fallback = fallback
        self.session = requests.Session()
        if config.llm_api_key:
            self.session.headers["Authorization"] = f"Bearer {config.llm_api_key}"

    def advise(self, prompt_type: str, context: dict) -> Advice:
        model = self.config.llm_model
        messages = [
            {
                "role": "system",
                "content": "You are a car-buying negotiation assistant. Answer in at most three "
                "sentences with a concrete price recommendation.",
            },
            {"role": "user", "content": json.dumps({"task": prompt_type, **context}, default=str)},
        ]
        metrics.llm_requests.labels(model, prompt_type).inc()
        start = time.perf_counter()
        status = "error"
        try:
            response = self.session.post(
                self.config.llm_api_base_url.rstrip("/") + "/chat/completions",
                json={"model": model, "messages": messages, "temperature": self.config.llm_temperature},
                timeout=self.config.llm_timeout,
            )
            status = str(response.status_code)
            response.raise_for_status()
            body = response.json()
            content = body["choices"][0]["message"]["content"].strip()
            usage = body.get("usage") or {}
        except (
            requests.RequestException,
            ValueError,
            KeyError,
            IndexError,
            TypeError,
            AttributeError,
        ) as exc:
            error_type = _error_type(exc)
            metrics.external_api_errors.labels(API_NAME, error_type).inc()
            metrics.llm_errors.labels(model, error_type).inc()
            log.warning("LLM call failed (%s), using the built-in advisor", error_type)
            advice = self.fallback.advise(prompt_type, context)
            advice.metadata.update(fallback=True, error_type=error_type)
            return advice
        finally:
            elapsed = time.perf_counter() - start
            metrics.external_api_requests.labels(API_NAME, status).inc()
            metrics.external_api_duration.labels(API_NAME).observe(elapsed)
            metrics.llm_request_duration.labels(model).observe(elapsed)
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        metrics.llm_tokens_used.labels(model, "prompt").inc(prompt_tokens)
        metrics.llm_tokens_used.labels(model, "completion").inc(completion_tokens)
        return Advice(
            content=content,
            model=body.get("model") or model,
            llm_used=True,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            temperature=self.config.llm_temperature,
        )


def _error_type(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection"
    if isinstance(exc, requests.HTTPError):
        return "http_status"
    return "invalid_response"


def build_advisor(config: Config):
    builtin = BuiltinAdvisor()
    if config.negotiation_advisor == "openai":
        return OpenAICompatibleAdvisor(config, builtin)
    return builtin
