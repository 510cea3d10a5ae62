"""Settings pieces shared by the notifier kinds that hold a credential of their own (an API token, a
routing key, a password): it is named by a file or an environment variable, never written in
setpoint.yaml, which lives in Git."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def exactly_one(settings: BaseModel, stem: str) -> None:
    """``STEM_file`` xor ``STEM_env`` must be given."""
    if (getattr(settings, f"{stem}_file") is None) == (getattr(settings, f"{stem}_env") is None):
        raise ValueError(f"give exactly one of {stem}_file or {stem}_env")


class TokenSettings(Strict):
    """A kind whose API needs a token: ``token_file`` or ``token_env``."""

    token_file: Path | None = None
    token_env: str | None = None

    @model_validator(mode="after")
    def _one_token(self) -> TokenSettings:
        exactly_one(self, "token")
        return self
