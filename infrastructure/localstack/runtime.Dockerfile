# The local runtime for the Docker path (docker-compose.yml): the same `python -m localcloud`
# as `make up`, pointed at LocalStack instead of starting moto. Build context: the repo root.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    LOCALCLOUD_STATE_DIR=/state

WORKDIR /app
COPY pyproject.toml ./
COPY layers/common/requirements.txt layers/common/requirements.txt
COPY functions/inference/requirements.txt functions/inference/requirements.txt
COPY infrastructure/requirements.txt infrastructure/requirements.txt
COPY frontend/requirements.txt frontend/requirements.txt
COPY load/requirements.txt load/requirements.txt
COPY tests/requirements.txt tests/requirements.txt
# Dependencies first (a cached layer), then the code.
RUN pip install -r layers/common/requirements.txt -r functions/inference/requirements.txt \
        -r infrastructure/requirements.txt -r frontend/requirements.txt
COPY . .
RUN pip install --no-deps -e .

VOLUME /state
CMD ["python", "-m", "localcloud", "up", "--host", "0.0.0.0", "--no-frontend"]
