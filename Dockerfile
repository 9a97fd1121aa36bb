# One image for the bot and the workers; the same install steps as the README (`make install`).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN make install PYTHON=python3.11
ENV PATH="/app/.venv/bin:$PATH" \
    HEARTLINE_DATA_DIR=/app/data \
    HEARTLINE_WEB_HOST=0.0.0.0
EXPOSE 8080
CMD ["heartline", "run"]
