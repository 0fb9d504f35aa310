"""Settings from the environment (or a .env file), typed and validated at startup."""

from __future__ import annotations

from functools import lru_cache

from pydantic import PostgresDsn, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """DATABASE_URL must be a postgresql:// URL with a host; JWT_SECRET signs the tokens."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: PostgresDsn
    jwt_secret: SecretStr
    jwt_ttl_s: int = 24 * 3600
    db_pool_size: int = 10
    # The article list loads each article's author and tags lazily, one query per row (the
    # N+1 perfgate names); EAGER_LOAD=1 loads them with two IN queries for the whole page.
    eager_load: bool = False

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with SQLAlchemy's asyncpg driver."""
        scheme, rest = str(self.database_url).split("://", 1)
        return f"postgresql+asyncpg://{rest}" if "+" not in scheme else str(self.database_url)


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # filled from the environment
