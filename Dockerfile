# The platform's image: one image for the code location's gRPC server (where runs execute), the
# Dagster webserver and daemon, and the Integration Platform API; each compose service or Helm
# deployment picks its command (docker-compose.yml, deploy/helm/).
#
#   docker build -t integration-platform:0.1.0 .
#
# Multi-stage: `build` installs the locked dependencies (constraints.txt) with uv, as `make install`
# does, and builds the dbt manifest; `runtime` gets the venv and the project files only, and runs
# as an unprivileged user. No secret enters the image: .dockerignore keeps .env and local state
# out of the build context, and every credential comes from the environment at run time.

# The same base in both stages: the venv's python is a link to the base image's interpreter.
# Python 3.11, the release constraints.txt was locked and the suite runs on.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
# uv (the Makefile's pin) lives outside the venv, so the runtime image does not carry it.
RUN pip install --quiet uv==0.13.9 \
    && python -m venv --without-pip /opt/venv

WORKDIR /app
# The dependencies first, in a layer of their own that a code change does not rebuild: the
# [project] dependencies of pyproject.toml (no dev extra: no test tools, no sandbox vendors), each
# at the version constraints.txt locks.
COPY pyproject.toml constraints.txt README.md ./
RUN uv pip install --quiet --compile-bytecode --python /opt/venv/bin/python \
        -c constraints.txt -r pyproject.toml

# The project, installed editable as `make install` does: the package finds sources/,
# dbt_project/ and config/ beside itself (integration_platform/environment.py, PROJECT_ROOT).
COPY integration_platform/ integration_platform/
COPY sources/ sources/
COPY dbt_project/ dbt_project/
COPY dagster.yaml ./
COPY config/dagster.production.yaml config/
RUN uv pip install --quiet --no-deps --python /opt/venv/bin/python -c constraints.txt -e . \
    # Bytecode compiled once here, as the Makefile does: without it every process (the code
    # server, each run, each command) compiles every module it imports, again and again, since
    # the runtime user cannot write __pycache__ beside the code.
    && /opt/venv/bin/python -m compileall -q -j 0 integration_platform \
    # The spec-derived dbt files and the manifest, built into the image, so no run parses the
    # dbt project (what `dagster-dbt project prepare-and-package` does in a deployment).
    && /opt/venv/bin/integration-platform prepare


FROM ${PYTHON_IMAGE} AS runtime

# A numeric uid (USER below), so Kubernetes' runAsNonRoot can check it without a passwd lookup;
# deploy/helm/ runs the pods as the same uid.
RUN groupadd --system --gid 10001 platform \
    && useradd --system --uid 10001 --gid platform --create-home --home-dir /home/platform \
        --shell /usr/sbin/nologin platform \
    # The data directory (warehouse, landing zone, published copy) and $DAGSTER_HOME: volumes in
    # compose and Kubernetes, owned by the runtime user when they are first created.
    && mkdir -p /data /opt/dagster/dagster_home \
    && chown platform:platform /data /opt/dagster/dagster_home

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# dbt writes its run artefacts and logs into the project (target/, logs/) on every build; the rest
# of /app stays root's, read-only to the runtime user.
RUN chown -R platform:platform /app/dbt_project

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    INTEGRATION_PLATFORM_DATA_DIR=/data \
    INTEGRATION_PLATFORM_PROFILE=production

WORKDIR /app
USER 10001:10001

# Dagster webserver, the code location's gRPC server, the Integration Platform API.
EXPOSE 3000 4000 8000

CMD ["integration-platform", "--help"]
