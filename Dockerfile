# rpl-cds: the CDS Hooks service for recurrent pregnancy loss, served by gunicorn.
#   docker build -t rpl-cds .
#   docker run --rm -p 8080:8080 -e RPL_PUBLIC_BASE_URL=http://localhost:8080 \
#       -e RPL_AUTH_ISSUERS='[{"iss": "https://sandbox.cds-hooks.org", "jku_allowlist": ["https://sandbox.cds-hooks.org/.well-known/jwks.json"]}]' \
#       rpl-cds
# Authentication is on: the service starts only with a trusted issuer (here the public CDS
# Hooks sandbox, for trying it; README, "Security"). Feedback goes to SQLite in the container
# unless -e RPL_DATABASE_URL=postgresql+psycopg://user:password@host:5432/db.
# Settings come from RPL_* environment variables (README, "Configuration").
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the package with the PostgreSQL driver; the source tree is not kept.
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
COPY cards ./cards
COPY fhir_mappings ./fhir_mappings
RUN pip install ".[postgres]" && rm -rf /src

# An unprivileged user; its home holds the data folder (the default SQLite feedback
# file, /var/lib/rpl-cds/rpl-cds/feedback.sqlite3, when RPL_DATABASE_URL is not set).
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/rpl-cds rpl
ENV XDG_DATA_HOME=/var/lib/rpl-cds
USER rpl
WORKDIR /var/lib/rpl-cds

EXPOSE 8080

# Liveness without curl (not in slim images): Python's own HTTP client.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

# The production server, as in the README: gunicorn, JSON log lines on stdout.
CMD ["rpl-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
