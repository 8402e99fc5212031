"""Load tests for Hugging Face TGI: a streaming Locust user, an emulator, sweeps and reports."""

__version__ = "0.1.0"
