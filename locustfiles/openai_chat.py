"""Locust against an OpenAI-compatible chat route (TGI Messages API, vLLM, llama.cpp):
`locust -f locustfiles/openai_chat.py --host http://HOST:PORT [--model NAME] [--ignore-eos]`.
"""

from harness.load.users import OpenAIChatUser


class ChatUser(OpenAIChatUser):
    """POST /v1/chat/completions with stream_options.include_usage."""
