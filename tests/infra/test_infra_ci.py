"""The GitHub workflow runs the README's test command on every push and pull request, and the
dev container brings the tools the README's deploy section needs."""

from __future__ import annotations

import json
import re

import yaml
from infra_helpers import ROOT


def test_workflow_runs_make_test_on_push_and_pull_request():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text("utf-8"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true

    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs == ["make test"]
    python = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")]
    assert python[0]["with"]["python-version"] == "3.11"


def test_dev_container_has_python_node_and_the_azure_tools():
    container = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text("utf-8"))
    features = " ".join(container["features"])

    assert "python:1-3.11" in container["image"]
    assert container["features"]["ghcr.io/devcontainers/features/node:1"]["version"] == "20"
    for tool in ("azure-cli", "azure-dev/azd", "azure-functions-core-tools"):
        assert tool in features, tool
    assert container["postCreateCommand"] == "make setup"


def test_every_azd_variable_the_readme_names_feeds_a_parameter():
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme[readme.index("## Deploy to Azure"):]
    section = section[:section.index("\n## ", 1)]
    parameters = (ROOT / "infra" / "main.parameters.json").read_text("utf-8")

    named = set(re.findall(r"azd env set ([A-Z][A-Z0-9_]+)", section))
    named |= set(re.findall(r"^\| ([A-Z][A-Z0-9_]+)[ ,]", section, re.M))
    assert "RECO_MODEL_ID" in named
    fed = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", parameters))
    assert named <= fed, named - fed
    assert "azd up" in section and "azd down" in section
