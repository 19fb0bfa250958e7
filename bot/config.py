"""Process settings from the environment (and `.env`).

The variable names are a contract with operators, tests and docs; `.env.example`
documents every one.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SLACK_DEFAULT_API_URL = "https://slack.com/api/"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False,
    )

    slack_bot_token: SecretStr = Field(default=SecretStr(""), alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr = Field(default=SecretStr(""), alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr = Field(default=SecretStr(""), alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default=SLACK_DEFAULT_API_URL, alias="SLACK_API_URL")
    database_url: str = Field(default="", alias="DATABASE_URL")
    redis_url: str = Field(default="", alias="REDIS_URL")
    rollbot_config: str = Field(default="rollbot.toml", alias="ROLLBOT_CONFIG")
    gcp_emulator_host: str = Field(default="", alias="ROLLBOT_GCP_EMULATOR_HOST")
    port: int = Field(default=3000, alias="PORT", ge=1, le=65535)
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_format: str = Field(default="text", alias="LOG_FORMAT")
    slack_post_interval: float = Field(default=1.0, alias="ROLLBOT_SLACK_POST_INTERVAL", ge=0)
    # Job worker processes `rollbot serve` runs beside its HTTP listener; 0 runs the
    # jobs on the listener's own event loop (where they compete with the acks).
    workers: int = Field(default=1, alias="ROLLBOT_WORKERS", ge=0, le=16)
    # On SIGTERM, jobs already running get this long to finish; past it they are
    # cancelled and queued again for any replica. Under Cloud Run's 10 s, which also
    # has to cover closing the pools.
    shutdown_grace_seconds: float = Field(
        default=8.0, alias="ROLLBOT_SHUTDOWN_GRACE_SECONDS", ge=0, le=3600)
    # Jobs one worker process runs at once. A confirm job holds its slot through the
    # change's verification (up to a service's window_seconds): an outage that hits
    # every service must not queue one service's rollback behind another's checks.
    # Slots are coroutines, cheap; database connections are taken per statement.
    job_concurrency: int = Field(default=32, alias="ROLLBOT_JOB_CONCURRENCY", ge=1, le=1000)

    @property
    def slack_api_base(self) -> str:
        """slack_sdk appends method names to base_url, so it must end with a slash."""
        url = self.slack_api_url
        return url if url.endswith("/") else url + "/"

    def missing_for_serving(self) -> list[str]:
        """Names of required variables that are unset, for a clear start-up error."""
        missing = []
        if not self.slack_bot_token.get_secret_value():
            missing.append("SLACK_BOT_TOKEN")
        if not self.slack_signing_secret.get_secret_value():
            missing.append("SLACK_SIGNING_SECRET")
        if not self.database_url:
            missing.append("DATABASE_URL")
        if not self.redis_url:
            missing.append("REDIS_URL")
        return missing
