# afterload as an Estuary Flow materialization connector image.
# The labels tell Flow's runtime to speak the JSON codec and the materialize protocol.
FROM python:3.11-slim

WORKDIR /opt/afterload
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir ".[postgres]" && useradd --create-home connector

USER connector
WORKDIR /home/connector

LABEL FLOW_RUNTIME_CODEC=json
LABEL FLOW_RUNTIME_PROTOCOL=materialize

ENTRYPOINT ["afterload", "flow-connector"]
