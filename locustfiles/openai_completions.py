"""Locust against an OpenAI-compatible completions route (TGI, vLLM, llama.cpp):
`locust -f locustfiles/openai_completions.py --host http://HOST:PORT [--model NAME] [--ignore-eos]`.
"""

from harness.load.users import OpenAICompletionsUser


class CompletionsUser(OpenAICompletionsUser):
    """POST /v1/completions."""
