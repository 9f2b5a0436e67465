# The mlnb model server: serves a model from the registry of the store mounted at /store.
#
#   docker build -t mlnb .
#   docker run --rm -p 8000:8000 -v "$PWD/runs:/store" --user "$(id -u):$(id -g)" \
#       mlnb weather@production --shadow weather@challenger --workers 2
#
# The store must be writable by the container's user: SQLite's WAL needs it to read the
# registry, and the shadow log is written under /store/shadow/. See docs/serving.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MLNB_STORE=/store \
    OMP_NUM_THREADS=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mlnb ./mlnb
COPY templates ./templates
RUN pip install . && useradd --create-home --uid 1000 mlnb

USER mlnb
WORKDIR /home/mlnb
VOLUME /store
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["mlnb", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["weather@production"]
