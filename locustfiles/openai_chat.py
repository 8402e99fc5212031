"""Locust against an OpenAI-compatible chat route (TGI Messages API, vLLM, llama.cpp):
`locust -f locustfiles/openai_chat.py --host http://HOST:PORT [--model-name NAME] [--ignore-eos]`.
"""

from locust import events

from harness.load.locust.listeners import register
from harness.load.locust.users import OpenAIChatUser

register(events)


class ChatUser(OpenAIChatUser):
    """POST /v1/chat/completions with stream_options.include_usage."""
