# syntax=docker/dockerfile:1
# The propstream image: every platform process is `propstream <command>` (see
# helm/propstream and docs/operations.md).
#
# Not built in this repository's CI: our machines have no Docker engine, so this file has
# never been built here. Build it where an engine exists:
#   docker build -t propstream:0.1.0 .

FROM python:3.11-slim AS build
# uv from PyPI, pinned to the version that wrote uv.lock's format.
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
# Byte code was compiled at build time; the root filesystem is read-only at run time.
# The image listens on every address, so it is never a developer's loopback: it runs as prod
# and refuses to start on the public dev secrets (PROPSTREAM_SECRET_KEY, the Stripe key and
# webhook secret); give it real ones from a secret store (the chart's existingSecret).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROPSTREAM_ENV=prod \
    PROPSTREAM_HOST=0.0.0.0 \
    PROPSTREAM_CACHE_DIR=/tmp/propstream
RUN groupadd --system --gid 10001 propstream \
 && useradd --system --uid 10001 --gid propstream --no-create-home --home-dir /app propstream
WORKDIR /app
COPY --from=build --chown=root:root /app /app
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["propstream"]
CMD ["--help"]
