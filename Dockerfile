# The seedance_pipeline code location as an image: a Dagster gRPC code server on port 3030.
# The same image runs the code server (Helm: dagster-user-deployments) and every run (K8sRunLauncher),
# so it carries dagster-postgres and dagster-k8s (the `k8s` extra) and neither the simulator nor the webserver
# (the Helm chart runs Dagster's own webserver image). No API key or password is baked in:
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

RUN pip install uv==0.13.9

# Dependencies first, exactly as uv.lock pins them, in a layer of their own (a code change does not reinstall
# them): the `k8s` extra (dagster-postgres, dagster-k8s), without the simulator or the webserver.
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-emit-project --no-dev --extra k8s --format requirements-txt -o /tmp/requirements.txt \
    && uv pip install --system --no-deps -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the package itself.
COPY README.md workspace.yaml ./
COPY seedance_pipeline ./seedance_pipeline
RUN uv pip install --system --no-deps '.[k8s]'

# An unprivileged user owns nothing but DAGSTER_HOME (the chart mounts dagster.yaml there).
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin dagster \
    && mkdir -p "$DAGSTER_HOME" \
    && chown dagster "$DAGSTER_HOME"
USER 10001

EXPOSE 3030
CMD ["dagster", "code-server", "start", "-m", "seedance_pipeline.definitions", "-h", "0.0.0.0", "-p", "3030"]
