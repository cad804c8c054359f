"""Core service configuration: the kernel's settings plus identity, sessions and payments."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from kernel.settings import (
    DEV_DATA_KEY_SECRET,
    DEV_WEBHOOK_SECRET,
    STRIPE_API_BASE,
    STRIPE_MOCK_KEY,
    KernelSettings,
)


class CoreSettings(KernelSettings):
    """Everything a core process (API, deciders, projections, policies) is configured with."""

    api_port: int = Field(default=8000, ge=1, le=65535)
    # Identity (core): strict buckets per IP (and per email for login), and token lifetimes.
    login_rate_per_s: float = Field(default=5 / 60, gt=0, le=100_000,
                                    description="login attempts per second, per IP and email")
    login_burst: int = Field(default=10, ge=1, le=1_000_000)
    register_rate_per_s: float = Field(default=10 / 3600, gt=0, le=100_000,
                                       description="registrations per second, per IP")
    register_burst: int = Field(default=10, ge=1, le=1_000_000)
    access_token_ttl_s: int = Field(default=15 * 60, ge=10, le=24 * 3600)
    refresh_family_ttl_s: int = Field(default=30 * 24 * 3600, ge=60, le=365 * 24 * 3600,
                                      description="absolute lifetime of one login's refresh")
    seed_admin_password: SecretStr | None = Field(
        default=None, description="password of the dev admin `propstream seed` creates")
    seed_trader_password: SecretStr | None = Field(
        default=None, description="password of the demo trader `propstream seed` creates")
    # Wraps every user's data key (kernel.sealing): a database dump alone opens no personal
    # data. Changing it makes every stored data key unwrappable: rotate by rewrapping.
    data_key_secret: SecretStr = SecretStr(DEV_DATA_KEY_SECRET)
    # Payments (Stripe). The default key is the one stripe-mock accepts; with it and no base,
    # the client talks to the local stripe-mock. Any other key without a base talks to Stripe.
    stripe_api_key: SecretStr = SecretStr(STRIPE_MOCK_KEY)
    stripe_api_base: str | None = Field(
        default=None, description="Stripe API base URL; none = stripe-mock for the mock key, "
                                  "https://api.stripe.com for any other key")
    stripe_webhook_secret: SecretStr = SecretStr(DEV_WEBHOOK_SECRET)
    stripe_webhook_tolerance_s: int = Field(
        default=300, ge=1, le=3600, description="oldest webhook signature timestamp accepted")
    stripe_timeout_s: float = Field(default=10.0, gt=0, le=80,
                                    description="one Stripe API call, before it counts as down")
    public_base_url: str = Field(
        default="http://localhost:5173",
        description="where the frontend is: Stripe sends buyers back to success/cancel pages")
    # Sessions (issue 9 point 4): how long a token request waits for an undecided role change
    # before answering 503, and how long such a change blocks tokens at most.
    role_change_wait_s: float = Field(default=2.0, ge=0, le=30)
    role_change_pending_s: int = Field(default=30, ge=1, le=600)
    refresh_rate_per_s: float = Field(default=1.0, gt=0, le=100_000,
                                      description="/auth/refresh per IP (fail closed)")
    refresh_burst: int = Field(default=30, ge=1, le=1_000_000)
    # Failed logins of one email: a strict bucket per (email, IP) and a larger one per email
    # that refills at least as fast, so one address can never hold an account locked.
    login_email_ip_rate_per_s: float = Field(default=5 / 60, gt=0, le=100_000)
    login_email_ip_burst: int = Field(default=10, ge=1, le=1_000_000)
    login_email_rate_per_s: float = Field(default=20 / 60, gt=0, le=100_000)
    login_email_burst: int = Field(default=50, ge=1, le=1_000_000)
    # Time travel (GET /accounts/{id}?as_of=): records of the log one request may read (its
    # tail is bounded by the history's snapshot spacing; past this the history is behind),
    # and how many requests read the log at once.
    time_travel_max_records: int = Field(default=50_000, ge=1_000, le=10_000_000)
    time_travel_readers: int = Field(default=2, ge=1, le=64)
    # The account engine: an order is refused `stale-quote` when its instrument's newest tick
    # is older than this; an account holding positions is marked to market (an
    # `account.equity-marked` event) at most once per interval of tick time.
    quote_max_age_ms: int = Field(default=5_000, ge=100, le=3_600_000)
    equity_mark_interval_ms: int = Field(default=1_000, ge=100, le=3_600_000)

    @model_validator(mode="after")
    def _one_address_cannot_lock_an_account(self) -> CoreSettings:
        if (self.login_email_burst <= self.login_email_ip_burst
                or self.login_email_rate_per_s < self.login_email_ip_rate_per_s):
            raise ValueError("PROPSTREAM_LOGIN_EMAIL_BURST and _RATE_PER_S must exceed the "
                             "per-(email, IP) ones, or one address can lock an account out")
        return self

    def public_defaults(self) -> dict[str, tuple[SecretStr, str]]:
        return {**super().public_defaults(),
                "PROPSTREAM_STRIPE_WEBHOOK_SECRET": (self.stripe_webhook_secret,
                                                     DEV_WEBHOOK_SECRET),
                "PROPSTREAM_STRIPE_API_KEY": (self.stripe_api_key, STRIPE_MOCK_KEY),
                "PROPSTREAM_DATA_KEY_SECRET": (self.data_key_secret, DEV_DATA_KEY_SECRET)}

    @property
    def stripe_base(self) -> str:
        """Where the Stripe client sends requests: the set base, stripe-mock, or Stripe."""
        if self.stripe_api_base is not None:
            return self.stripe_api_base
        if self.stripe_api_key.get_secret_value() == STRIPE_MOCK_KEY:
            return f"http://{self.host}:{self.stripe_mock_port}"
        return STRIPE_API_BASE
