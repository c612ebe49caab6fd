"""The deployment files agree with the code: the Dockerfile, .dockerignore, docker-compose.yml and
the Helm values and manifests (deploy/helm/) name only commands, options, ports, modules and
variables that exist, give every process the variables the code needs, and write no secret.

No container engine runs here: the files are parsed, never built or started (the README's
"Deploying" section says so). Commands resolve against the click commands of this venv, which
holds the versions the image installs (constraints.txt).
"""

from __future__ import annotations

import copy
import re
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from tests import deployment_files as df


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(df.COMPOSE_FILE.read_text())
    return compose


def _helm_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(df.HELM_VALUES.read_text())
    return values


def _helm_manifests() -> list[Any]:
    return df.load_yaml_documents(df.HELM_MANIFESTS)


def _dockerfile() -> list[df.Instruction]:
    return df.dockerfile_instructions(df.DOCKERFILE.read_text())


def _final_stage() -> list[df.Instruction]:
    instructions = _dockerfile()
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def _image_uid() -> int:
    (user,) = [i for i in _final_stage() if i.keyword == "USER"]
    return int(user.arguments.split(":")[0])


def _exposed_ports() -> set[int]:
    return {
        int(port.split("/")[0])
        for i in _final_stage()
        if i.keyword == "EXPOSE"
        for port in i.arguments.split()
    }


def _copied_sources() -> list[str]:
    return [s.rstrip("/") for i in _dockerfile() if i.keyword == "COPY" for s in df.copy_sources(i)]


# -- the image ---------------------------------------------------------------------------------


def test_image_runs_as_an_unprivileged_user_when_built_in_stages() -> None:
    instructions = _dockerfile()
    assert len([i for i in instructions if i.keyword == "FROM"]) >= 2, "not multi-stage"
    assert _image_uid() > 0
    # The runtime stage takes the build stage's venv and project, not the build tools.
    froms = [i.words()[-1] for i in instructions if i.keyword == "FROM"]
    build_stage = froms[0]
    copied = [i.words() for i in _final_stage() if i.keyword == "COPY"]
    assert any(f"--from={build_stage}" in words for words in copied)


def test_image_runs_a_python_the_project_supports_in_both_stages() -> None:
    instructions = _dockerfile()
    (arg,) = [i for i in instructions if i.keyword == "ARG" and "PYTHON_IMAGE=" in i.arguments]
    found = re.fullmatch(r"PYTHON_IMAGE=python:(\d+\.\d+)[-.\w]*", arg.arguments)
    assert found, arg.arguments
    requires = tomllib.loads((df.ROOT / "pyproject.toml").read_text())["project"]
    assert f"{found.group(1)}.0" in SpecifierSet(requires["requires-python"])
    # The venv built in the first stage runs on the second's interpreter: the same image.
    assert {i.words()[0] for i in instructions if i.keyword == "FROM"} == {"${PYTHON_IMAGE}"}


def test_every_file_the_image_copies_is_in_the_repository_and_the_build_context() -> None:
    patterns = df.ignore_patterns(df.DOCKERIGNORE)
    sources = _copied_sources()
    assert sources
    for source in sources:
        assert (df.ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not df.dockerignore_excludes(source, patterns), f"COPY {source}: .dockerignored"


def test_image_installs_the_locked_dependencies_and_builds_the_dbt_manifest() -> None:
    build = [i for i in _dockerfile() if i.stage == 0]
    commands = [words for i in build if i.keyword == "RUN" for words in df.shell_commands(i)]
    installs = [w for w in commands if w[:3] == ["uv", "pip", "install"]]
    assert installs, "no `uv pip install` (the Makefile's installer)"
    for words in installs:
        assert words[words.index("-c") + 1] == "constraints.txt", "not installed with constraints"
        assert not any("[dev" in word for word in words), "the dev extra is not for the image"
    # Bytecode compiled once, as the Makefile does; the manifest parsed once, as make install does.
    assert any(w[1:4] == ["-m", "compileall", "-q"] for w in commands)
    prepare = [w for w in commands if PurePosixPath(w[0]).name == "integration-platform"]
    assert [df.resolve(w).path for w in prepare] == [("integration-platform", "prepare")]
    (cmd,) = [i for i in _final_stage() if i.keyword == "CMD"]
    df.resolve(cmd.words())


def test_local_state_and_secrets_stay_out_of_the_build_context_when_git_ignores_them() -> None:
    patterns = df.ignore_patterns(df.DOCKERIGNORE)
    folders = [s for s in _copied_sources() if (df.ROOT / s).is_dir()]
    leaked = []
    for pattern in df.ignore_patterns(df.ROOT / ".gitignore"):
        name = pattern.rstrip("/").replace("*", "x")
        # Git reads a pattern without an inner slash at any depth: so does the check.
        places = [""] + ([f"{folder}/" for folder in folders] if "/" not in name else [])
        for place in places:
            path = place + name + ("/file" if pattern.endswith("/") else "")
            if not df.dockerignore_excludes(path, patterns):
                leaked.append(f"{path} (.gitignore: {pattern})")
    assert leaked == []


def test_every_tracked_file_of_the_copied_folders_enters_the_build_context() -> None:
    patterns = df.ignore_patterns(df.DOCKERIGNORE)
    tracked = subprocess.run(
        ["git", "-C", str(df.ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    sources = _copied_sources()
    copied = [p for p in tracked if any(p == s or p.startswith(f"{s}/") for s in sources)]
    assert copied
    assert [p for p in copied if df.dockerignore_excludes(p, patterns)] == []


def test_dockerignore_reads_patterns_as_docker_does_when_a_folder_is_let_back_in() -> None:
    patterns = ["*", "!src/", "**/__pycache__", "!keep.txt"]
    assert df.dockerignore_excludes(".env", patterns)
    assert not df.dockerignore_excludes("src/app.py", patterns)
    assert df.dockerignore_excludes("src/pkg/__pycache__/app.pyc", patterns)
    assert not df.dockerignore_excludes("keep.txt", patterns)


# -- docker compose ----------------------------------------------------------------------------


def test_every_compose_command_and_health_check_exists_in_the_code() -> None:
    workloads = df.compose_workloads(_compose())
    roles = {w.invocation().path for w in workloads}
    # The code server, webserver, daemon, API, and the step that places the instance.
    assert roles >= {*df.CODE_SERVER[:1], *df.WEBSERVER, *df.DAEMON, *df.API, *df.INSTANCE_INIT}
    assert df.command_findings(workloads) == []


def test_every_compose_port_is_the_one_its_command_listens_on() -> None:
    workloads = df.compose_workloads(_compose())
    assert df.port_findings(workloads, _exposed_ports()) == []


def test_every_compose_service_has_the_variables_the_code_needs() -> None:
    workloads = df.compose_workloads(_compose())
    assert df.environment_findings(workloads, instance_from_environment=True) == []


@pytest.mark.parametrize(
    ("service", "variable", "reported"),
    [
        ("code-server", "DAGSTER_POSTGRES_URL", "code-server: DAGSTER_POSTGRES_URL is not set"),
        ("daemon", "INTEGRATION_PLATFORM_PROFILE", "daemon: INTEGRATION_PLATFORM_PROFILE is not"),
        ("code-server", "INTEGRATION_PLATFORM_SECRET_KEY", "code-server: INTEGRATION_PLATFORM_SE"),
        ("api", "DAGSTER_WEBSERVER_URL", "api: DAGSTER_WEBSERVER_URL is not set"),
        ("api", "DATABASE_URL", "api: the client store would be SQLite"),
        ("api", "INTEGRATION_PLATFORM_DATA_DIR", "api: the published copy"),
        ("api", "INTEGRATION_PLATFORM_PROFILE", "api: the API runs in the local instance"),
        ("api", "DAGSTER_POSTGRES_URL", "api: the production instance profile"),
        ("code-server", "INTEGRATION_PLATFORM_DATA_DIR", "code-server: the warehouse"),
    ],
)
def test_compose_check_names_the_variable_when_a_service_lacks_it(
    service: str, variable: str, reported: str
) -> None:
    compose = copy.deepcopy(_compose())
    del compose["services"][service]["environment"][variable]
    findings = df.environment_findings(
        df.compose_workloads(compose), instance_from_environment=True
    )
    assert any(f.startswith(reported) for f in findings), findings
    assert any(variable in f for f in findings), findings


@pytest.mark.parametrize(
    ("service", "variable", "reported"),
    [
        ("workers", "CELERY_BROKER_URL", "workers: CELERY_BROKER_URL is not set"),
        ("warehouse-worker", "CELERY_BROKER_URL", "warehouse-worker: CELERY_BROKER_URL is not"),
        ("workers", "DATABASE_URL", "workers: DATABASE_URL is not set"),
        ("warehouse-worker", "DAGSTER_POSTGRES_URL", "warehouse-worker: DAGSTER_POSTGRES_URL is"),
        ("code-server", "CELERY_BROKER_URL", "code-server: CELERY_BROKER_URL is not set"),
        ("api", "CELERY_BROKER_URL", "api: CELERY_BROKER_URL is not set"),
    ],
)
def test_compose_check_names_the_variable_when_a_worker_or_its_runs_lack_it(
    service: str, variable: str, reported: str
) -> None:
    compose = copy.deepcopy(_compose())
    environment = compose["services"][service]["environment"]
    # The workers' variables come through merged anchors: the service gets a copy without it.
    compose["services"][service]["environment"] = {
        key: value for key, value in environment.items() if key != variable
    }
    findings = df.environment_findings(
        df.compose_workloads(compose), instance_from_environment=True
    )
    assert any(f.startswith(reported) for f in findings), findings


def test_compose_check_reports_a_second_warehouse_writer_when_the_warehouse_worker_scales() -> None:
    compose = copy.deepcopy(_compose())
    compose["services"]["warehouse-worker"]["deploy"] = {"replicas": 2}
    findings = df.environment_findings(
        df.compose_workloads(compose), instance_from_environment=True
    )
    assert findings == [
        "warehouse-worker: more than one process takes the 'warehouse' queue; DuckDB has one writer"
    ]


def test_compose_check_reports_a_variable_whose_value_the_code_refuses() -> None:
    compose = copy.deepcopy(_compose())
    code_server = compose["services"]["code-server"]["environment"]
    code_server["INTEGRATION_PLATFORM_PROFILE"] = "local"
    code_server["DAGSTER_POSTGRES_URL"] = "postgresql://platform:${POSTGRES_PASSWORD}@postgres/d"
    compose["services"]["api"]["environment"]["DAGSTER_WEBSERVER_URL"] = "http://webserver:80"
    findings = df.environment_findings(
        df.compose_workloads(compose), instance_from_environment=True
    )
    assert any("INTEGRATION_PLATFORM_PROFILE is 'local'" in f for f in findings), findings
    assert any("must start with postgresql+psycopg2://" in f for f in findings), findings
    assert any("DAGSTER_WEBSERVER_URL leads to http://webserver:80" in f for f in findings)


def test_compose_check_reports_a_command_option_or_port_that_does_not_exist() -> None:
    compose = copy.deepcopy(_compose())
    compose["services"]["api"]["command"] = ["integration-platform", "api", "serve", "--workers"]
    compose["services"]["webserver"]["ports"] = ["3000:3001"]
    compose["services"]["code-server"]["healthcheck"]["test"][-1] = "4001"
    workloads = df.compose_workloads(compose)
    findings = df.command_findings(workloads)
    assert any("api: `integration-platform api serve --workers`" in f for f in findings)
    assert any("code-server: the health check asks port 4001" in f for f in findings)
    assert any(
        "webserver: publishes container port 3001" in f
        for f in df.port_findings([w for w in workloads if w.name == "webserver"])
    )


def test_compose_webserver_and_daemon_reach_the_code_server_through_the_mounted_workspace() -> None:
    workloads = {w.name: w for w in df.compose_workloads(_compose())}
    (code_server,) = [w for w in workloads.values() if w.invocation().path in df.CODE_SERVER]
    location = df.code_location_name()
    assert code_server.invocation().params["location_name"] == location
    for workload in workloads.values():
        invocation = workload.invocation()
        if invocation.path not in (*df.WEBSERVER, *df.DAEMON):
            continue
        # The repository's file mounted where the command reads its workspace.
        (workspace_file,) = invocation.params["workspace"]
        (entry,) = yaml.safe_load(Path(workspace_file).read_text())["load_from"]
        server = entry["grpc_server"]
        assert (server["host"], server["port"]) == (code_server.name, code_server.invocation().port)
        assert server["location_name"] == location


def test_every_file_compose_mounts_or_reads_exists_in_the_repository() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (df.ROOT / source).is_file(), f"{name}: mounts {source}, which is missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
        for env_file in service.get("env_file") or []:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            required = isinstance(env_file, str) or env_file.get("required", True)
            # .env holds the operator's secrets: never in the repository, so never required.
            assert not required or (df.ROOT / path).is_file(), f"{name}: needs {path}"


def test_every_long_running_compose_service_has_a_health_check() -> None:
    for name, service in _compose()["services"].items():
        if service.get("restart") == "no":  # a step that runs once
            continue
        assert (service.get("healthcheck") or {}).get("test"), f"{name}: no health check"


def test_no_secret_is_written_into_the_compose_file() -> None:
    assert df.compose_secret_findings(_compose()) == []


def test_secret_check_reports_a_literal_password_when_one_is_written() -> None:
    compose = copy.deepcopy(_compose())
    compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter22"
    api = compose["services"]["api"]["environment"]
    api["DATABASE_URL"] = "postgresql://platform:hunter22@postgres:5432/platform"
    findings = df.compose_secret_findings(compose)
    assert "postgres: POSTGRES_PASSWORD is written as a literal; it must come from a secret" in (
        findings
    )
    assert "api: DATABASE_URL holds a literal password; it must come from a secret" in findings


# -- Helm --------------------------------------------------------------------------------------


def test_helm_code_location_and_platform_manifests_name_existing_commands_and_ports() -> None:
    workloads = df.helm_workloads(_helm_values(), _helm_manifests())
    roles = {w.invocation().path for w in workloads}
    assert {*df.CODE_SERVER[:1], *df.API, ("dagster", "instance", "concurrency", "set")} <= roles
    assert df.command_findings(workloads) == []
    assert df.port_findings(workloads, _exposed_ports()) == []
    (code_server,) = [w for w in workloads if w.invocation().path in df.CODE_SERVER]
    assert code_server.invocation().params["location_name"] == df.code_location_name()


def _helm_environment_findings(values: dict[str, Any], manifests: list[Any]) -> list[str]:
    return df.environment_findings(
        df.helm_workloads(values, manifests),
        instance_from_environment=False,
        chart_instance=df.chart_instance_variables(values),
    )


def _manifest(manifests: list[Any], name: str) -> dict[str, Any]:
    (document,) = [
        d for d in manifests if d["kind"] == "Deployment" and d["metadata"]["name"] == name
    ]
    found: dict[str, Any] = document
    return found


def _container(manifests: list[Any], name: str) -> dict[str, Any]:
    (container,) = _manifest(manifests, name)["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = container
    return found


def _without(entries: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    kept = [e for e in entries if e["name"] != name]
    assert len(kept) == len(entries) - 1, f"{name} was not there"
    return kept


def test_helm_processes_have_the_variables_the_code_needs() -> None:
    assert _helm_environment_findings(_helm_values(), _helm_manifests()) == []


def test_helm_check_names_the_variable_when_the_code_location_lacks_it() -> None:
    values = _helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    deployment["env"] = [e for e in deployment["env"] if e["name"] != "DATABASE_URL"]
    assert _helm_environment_findings(values, _helm_manifests()) == [
        "user deployment integration-platform: DATABASE_URL is not set, and the code needs it"
    ]


def test_helm_api_reaches_the_chart_webserver_on_its_port() -> None:
    from integration_platform.orchestration.dagster_graphql import WEBSERVER_URL_VARIABLE

    webserver = _helm_values()["dagsterWebserver"]
    port = webserver["service"]["port"]
    assert webserver["readinessProbe"]["httpGet"]["port"] == port
    (api,) = [
        w
        for w in df.helm_workloads(_helm_values(), _helm_manifests())
        if w.invocation().path in df.API
    ]
    url = urlsplit(api.environment[WEBSERVER_URL_VARIABLE])
    # The chart names the webserver's Service <release>-dagster-webserver (release `dagster`).
    assert (url.hostname, url.port) == ("dagster-dagster-webserver", port)
    assert webserver["readinessProbe"]["httpGet"]["path"] in df.served_paths(
        df.resolve(["dagster-webserver"])
    )


def test_helm_instance_settings_are_the_production_profile() -> None:
    from integration_platform.orchestration import instance

    profile = yaml.safe_load(instance.PROFILE_FILES[instance.PRODUCTION].read_text())
    values = _helm_values()
    # Storage is the chart's (postgresql:); every other section of the profile is held here, so
    # a section added to the profile fails until the chart's values carry it too.
    assert set(profile) - {"storage"} == {
        "run_coordinator",
        "concurrency",
        "run_monitoring",
        "run_retries",
        "telemetry",
    }
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True
    assert coordinator["config"]["customRunCoordinator"] == profile["run_coordinator"]
    runs, pools = values["concurrency"]["runs"], values["concurrency"]["pools"]
    assert values["concurrency"]["enabled"] is True
    assert runs["maxConcurrentRuns"] == profile["concurrency"]["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == profile["concurrency"]["runs"]["tag_concurrency_limits"]
    assert pools == {
        "defaultLimit": profile["concurrency"]["pools"]["default_limit"],
        "granularity": profile["concurrency"]["pools"]["granularity"],
    }
    # The chart's runMonitoring cannot say max_runtime_seconds: the whole section comes from
    # additionalInstanceConfig, and the chart's own is off so it is not written twice.
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is False
    assert values["additionalInstanceConfig"] == {"run_monitoring": profile["run_monitoring"]}
    retries = values["dagsterDaemon"]["runRetries"]
    assert {"enabled": retries["enabled"], "max_retries": retries["maxRetries"]} == profile[
        "run_retries"
    ]
    assert values["telemetry"] == profile["telemetry"]


def test_helm_instance_names_classes_that_exist() -> None:
    values = _helm_values()
    launcher = values["runLauncher"]["config"]["customRunLauncher"]
    logs = values["computeLogManager"]["config"]["customComputeLogManager"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]["config"]["customRunCoordinator"]
    for custom in (launcher, logs, coordinator):
        assert df.class_exists(custom["module"], custom["class"]), custom
    # The runs' logs are written by the code location and read by the webserver: one volume.
    base = PurePosixPath(logs["config"]["base_dir"])
    mounts = df.helm_workloads(values, _helm_manifests())[0].mounts
    webserver = values["dagsterWebserver"]["volumeMounts"]
    assert any(PurePosixPath(m) in base.parents for m in mounts)
    assert any(PurePosixPath(m["mountPath"]) in base.parents for m in webserver)


def test_helm_pool_job_gives_the_warehouse_pool_its_slots() -> None:
    from integration_platform.orchestration.instance import WAREHOUSE_POOL_SLOTS
    from integration_platform.transform.dbt_assets import WAREHOUSE_POOL

    (job,) = [
        w for w in df.helm_workloads(_helm_values(), _helm_manifests()) if w.name.startswith("Job")
    ]
    assert job.invocation().params == {"key": WAREHOUSE_POOL, "limit": WAREHOUSE_POOL_SLOTS}


def test_helm_pods_run_as_the_image_user() -> None:
    values = _helm_values()
    contexts = [
        values["dagsterWebserver"]["podSecurityContext"],
        values["dagsterDaemon"]["podSecurityContext"],
        *(d["podSecurityContext"] for d in values["dagster-user-deployments"]["deployments"]),
        *(
            doc["spec"]["template"]["spec"]["securityContext"]
            for doc in _helm_manifests()
            if doc["kind"] in ("Deployment", "Job")
        ),
    ]
    for context in contexts:
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == _image_uid()


def test_no_secret_is_written_into_the_helm_files() -> None:
    values = _helm_values()
    findings = []
    for deployment in values["dagster-user-deployments"]["deployments"]:
        findings += df.kubernetes_secret_findings(deployment["name"], deployment.get("env") or [])
    for doc in _helm_manifests():
        if doc["kind"] in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                findings += df.kubernetes_secret_findings(
                    container["name"], container.get("env") or []
                )
    # The chart would put a written password into a Secret of its own: none is written.
    assert values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in values["postgresql"]
    assert findings == []


def test_dagster_accepts_the_instance_the_chart_writes_from_the_values(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    config = df.chart_instance_config(_helm_values())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    validated, _ = dagster_instance_config(str(tmp_path))
    assert validated["run_monitoring"]["max_runtime_seconds"] == 21600


# -- Helm: the celery workers ------------------------------------------------------------------


def _helm_workers() -> list[df.Workload]:
    workloads = df.helm_workloads(_helm_values(), _helm_manifests())
    return [w for w in workloads if w.invocation().path in df.WORKERS]


def test_helm_workers_take_every_queue_with_one_warehouse_writer_that_never_overlaps() -> None:
    from integration_platform.celery_workers import EXTRACTION_QUEUE, QUEUES, WAREHOUSE_QUEUE

    workers = _helm_workers()
    assert df.command_findings(workers) == []
    by_queue = {q: [w for w in workers if q in w.invocation().params["queues"]] for q in QUEUES}
    (writer,) = by_queue[WAREHOUSE_QUEUE]
    assert (writer.replicas, writer.overlapping_updates) == (1, False)
    assert writer.invocation().params["queues"] == (WAREHOUSE_QUEUE,)
    assert sum(w.replicas for w in by_queue[EXTRACTION_QUEUE]) >= 1
    # Each checks its broker as compose's workers do (the probe's imports exist).
    assert all(w.exec_checks for w in workers)


def test_helm_workers_write_the_run_logs_where_the_webserver_reads_them() -> None:
    values = _helm_values()
    logs = values["computeLogManager"]["config"]["customComputeLogManager"]
    base = PurePosixPath(logs["config"]["base_dir"])
    (code_server,) = [
        w
        for w in df.helm_workloads(values, _helm_manifests())
        if w.invocation().path in df.CODE_SERVER
    ]
    for worker in _helm_workers():
        assert worker.volume_at(base) == code_server.volume_at(base) is not None, worker.name


@pytest.mark.parametrize(
    ("deployment", "variable", "reported"),
    [
        (
            "integration-platform-workers",
            "CELERY_BROKER_URL",
            "Deployment integration-platform-workers: CELERY_BROKER_URL is not set, and the code "
            "needs it",
        ),
        (
            "integration-platform-warehouse-worker",
            "CELERY_BROKER_URL",
            "Deployment integration-platform-warehouse-worker: CELERY_BROKER_URL is not set, and "
            "the code needs it",
        ),
        (
            "integration-platform-warehouse-worker",
            "DAGSTER_PG_PASSWORD",
            "Deployment integration-platform-warehouse-worker: DAGSTER_PG_PASSWORD is not set, "
            "and the code needs it",
        ),
        (
            "integration-platform-workers",
            "INTEGRATION_PLATFORM_SECRET_KEY",
            "Deployment integration-platform-workers: INTEGRATION_PLATFORM_SECRET_KEY is not set, "
            "and the code needs it",
        ),
        (
            "integration-platform-api",
            "CELERY_BROKER_URL",
            "Deployment integration-platform-api: CELERY_BROKER_URL is not set, so /health/ready "
            "would not ask the workers' broker",
        ),
    ],
)
def test_helm_check_names_the_variable_when_a_worker_or_the_api_lacks_it(
    deployment: str, variable: str, reported: str
) -> None:
    manifests = _helm_manifests()
    container = _container(manifests, deployment)
    container["env"] = _without(container["env"], variable)
    assert _helm_environment_findings(_helm_values(), manifests) == [reported]


def test_helm_check_reports_steps_kept_from_workers_when_the_code_location_lacks_the_broker() -> (
    None
):
    values = _helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    deployment["env"] = _without(deployment["env"], "CELERY_BROKER_URL")
    assert _helm_environment_findings(values, _helm_manifests()) == [
        "user deployment integration-platform: CELERY_BROKER_URL is not set, and the workers "
        "need it (without it, runs never send their steps to them)"
    ]


def test_helm_check_reports_another_broker_when_the_api_reads_another_secret_key() -> None:
    manifests = _helm_manifests()
    (broker,) = [
        e
        for e in _container(manifests, "integration-platform-api")["env"]
        if e["name"] == "CELERY_BROKER_URL"
    ]
    broker["valueFrom"]["secretKeyRef"]["key"] = "OTHER_BROKER_URL"
    assert _helm_environment_findings(_helm_values(), manifests) == [
        "Deployment integration-platform-api: CELERY_BROKER_URL is not the workers' broker"
    ]


def test_helm_check_reports_a_second_warehouse_writer_when_replicas_or_updates_allow_one() -> None:
    manifests = _helm_manifests()
    writer = _manifest(manifests, "integration-platform-warehouse-worker")
    writer["spec"]["replicas"] = 2
    del writer["spec"]["strategy"]
    findings = _helm_environment_findings(_helm_values(), manifests)
    assert findings == [
        "Deployment integration-platform-warehouse-worker: more than one process takes the "
        "'warehouse' queue; DuckDB has one writer",
        "Deployment integration-platform-warehouse-worker: an update starts the new 'warehouse' "
        "worker before the old one stops (set strategy Recreate); DuckDB has one writer",
    ]


def test_helm_check_reports_a_queue_no_worker_takes_when_the_warehouse_worker_is_missing() -> None:
    manifests = [
        d
        for d in _helm_manifests()
        if d["metadata"]["name"] != "integration-platform-warehouse-worker"
    ]
    assert _helm_environment_findings(_helm_values(), manifests) == [
        "no worker takes the 'warehouse' queue: its steps would wait forever"
    ]


def test_helm_check_reports_unshared_step_outputs_when_a_worker_lacks_the_storage_mount() -> None:
    manifests = _helm_manifests()
    container = _container(manifests, "integration-platform-workers")
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["mountPath"] == "/data"]
    assert _helm_environment_findings(_helm_values(), manifests) == [
        "Deployment integration-platform-workers: the runs' step outputs "
        "(/opt/dagster/dagster_home/storage) is on no volume the other processes share"
    ]


def test_helm_check_reports_a_landing_zone_of_its_own_when_a_worker_lands_elsewhere() -> None:
    manifests = _helm_manifests()
    container = _container(manifests, "integration-platform-workers")
    container["env"].append({"name": "LANDING_URL", "value": "/tmp/landing"})
    findings = _helm_environment_findings(_helm_values(), manifests)
    assert findings == [
        "Deployment integration-platform-workers: the landing zone (/tmp/landing) is on no "
        "volume the other processes share"
    ]
    # On object storage, every process must name the same bucket: the code server does not here.
    container["env"][-1]["value"] = "s3://landing/prod"
    assert _helm_environment_findings(_helm_values(), manifests) == [
        "the landing zone is not one shared place: object storage:s3://landing/prod, "
        "pvc:integration-platform-data:landing"
    ]
