# The seedance_pipeline code location as an image: a Dagster gRPC code server on port 3030.
# The same image runs the code server (Helm: dagster-user-deployments) and every run (K8sRunLauncher),
# so it carries dagster-postgres and dagster-k8s (the `k8s` extra). No API key or password is baked in:
# they come from Kubernetes Secrets at run time (deploy/k8s/values.yaml).
#
#   docker build -t registry.example.com/seedance-pipeline:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

WORKDIR /opt/dagster/app

# Dependencies first (a code change does not reinstall them), then the package itself.
COPY pyproject.toml README.md ./
COPY seedance_pipeline ./seedance_pipeline
COPY workspace.yaml ./
RUN pip install '.[k8s]'

# An unprivileged user owns nothing but DAGSTER_HOME (the chart mounts dagster.yaml there).
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin dagster \
    && mkdir -p "$DAGSTER_HOME" \
    && chown dagster "$DAGSTER_HOME"
USER 10001

EXPOSE 3030
CMD ["dagster", "code-server", "start", "-m", "seedance_pipeline.definitions", "-h", "0.0.0.0", "-p", "3030"]
