"""The fine-tuning panel's old home: its rules are ``segui.finetuning`` (Studio's
fine-tuning actions), its components ``segui.screens.finetune``. The names stay
importable from here for scripts and tests that use them."""
from .finetuning import (POLL_SECONDS, TERMINAL, PanelError, cancel, job_ended, latest_job,  # noqa: F401
                         start, status)
from .screens.finetune import render  # noqa: F401

__all__ = ["POLL_SECONDS", "TERMINAL", "PanelError", "cancel", "job_ended", "latest_job", "start", "status",
           "render"]
