"""Locust against an OpenAI-compatible completions route (TGI, vLLM, llama.cpp):
`locust -f locustfiles/openai_completions.py --host http://HOST:PORT [--model-name NAME] [--ignore-eos]`.
"""

from locust import events

from harness.load.locust.listeners import register
from harness.load.locust.users import OpenAICompletionsUser

register(events)


class CompletionsUser(OpenAICompletionsUser):
    """POST /v1/completions."""
