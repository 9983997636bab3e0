"""azure.yaml and its hook scripts: they exist for both shells, are valid shell, subscribe the
blob trigger that triggers/blob_start.py really declares, and read only what provisioning
outputs; main.parameters.json feeds only parameters main.bicep has."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess

import pytest
import yaml
from infra_helpers import INFRA, ROOT, parse

AZURE_YAML = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
SCRIPTS = ROOT / "scripts"
SHELL_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))


def blob_trigger_function_names() -> list[str]:
    """Names of the functions decorated with ``<blueprint>.blob_trigger(...)``."""
    tree = ast.parse((ROOT / "triggers" / "blob_start.py").read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                        and decorator.func.attr == "blob_trigger"):
                    names.append(node.name)
    return names


def test_services_point_at_the_function_app_and_recoservice():
    services = AZURE_YAML["services"]

    assert services["api"]["host"] == "function"
    assert (ROOT / services["api"]["project"] / "function_app.py").is_file()
    reco = services["recoservice"]
    assert reco["host"] == "containerapp"
    project = ROOT / reco["project"]
    assert (project / "__main__.py").is_file()
    assert (project / reco["docker"]["path"]).is_file()


def test_azd_service_names_match_the_resource_tags():
    tagged = {"api": "app/function.bicep", "recoservice": "app/recoservice.bicep"}

    for service, path in tagged.items():
        assert service in AZURE_YAML["services"]
        assert f"'azd-service-name': '{service}'" in (INFRA / path).read_text(encoding="utf-8")


@pytest.mark.parametrize("hook", ["preprovision", "postdeploy"])
def test_every_hook_has_a_posix_and_a_windows_script(hook):
    spec = AZURE_YAML["hooks"][hook]

    assert spec["posix"]["shell"] == "sh"
    assert spec["posix"]["run"].endswith(".sh")
    assert spec["windows"]["shell"] == "pwsh"
    assert spec["windows"]["run"].endswith(".ps1")
    for platform in ("posix", "windows"):
        assert (ROOT / spec[platform]["run"]).is_file(), spec[platform]["run"]
        assert spec[platform]["continueOnError"] is False


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_are_valid_posix_sh(script):
    for shell in ("sh", "bash"):
        result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_pass_shellcheck(script):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is missing: `make setup` installs it (apt-get, as root; "
                    "elsewhere `apt-get install shellcheck` first)")

    result = subprocess.run([shellcheck, "--shell=sh", str(script)], capture_output=True,
                            text=True, timeout=60)

    assert result.returncode == 0, result.stdout


def test_postdeploy_subscribes_the_blob_trigger_the_app_declares():
    (name,) = blob_trigger_function_names()
    sh = (SCRIPTS / "postdeploy.sh").read_text(encoding="utf-8")
    ps1 = (SCRIPTS / "postdeploy.ps1").read_text(encoding="utf-8")

    assert f"\nfunction_name={name}\n" in sh
    assert f"$functionName = '{name}'" in ps1
    for text in (sh, ps1):
        assert "/runtime/webhooks/blobs?functionName=Host.Functions." in text
        assert "systemKeys.blobs_extension" in text
        assert "Microsoft.Storage.BlobCreated" in text


def test_postdeploy_reads_only_what_provisioning_outputs():
    outputs = set(parse("main.bicep")["outputs"])
    sh = (SCRIPTS / "postdeploy.sh").read_text(encoding="utf-8")
    ps1 = (SCRIPTS / "postdeploy.ps1").read_text(encoding="utf-8")

    sh_names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", sh))
    ps1_names = set(re.findall(r"\$env:([A-Z][A-Z0-9_]+)", ps1))
    assert sh_names and sh_names <= outputs, sh_names - outputs
    assert ps1_names == sh_names


def test_parameters_file_feeds_only_main_bicep_parameters():
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    declared = parse("main.bicep")["parameters"]

    fed = set(parameters["parameters"])
    assert fed <= set(declared), fed - set(declared)
    without_default = {name for name, p in declared.items() if "default" not in p}
    assert without_default <= fed, without_default - fed


def test_no_parameter_reads_back_an_output_of_a_previous_provision():
    # azd writes outputs into the environment; a parameter fed from the same name would turn
    # e.g. recoservice's own RECO_ENDPOINT into an "external endpoint" on the next provision.
    text = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    inputs = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", text))
    outputs = set(parse("main.bicep")["outputs"])

    assert inputs & outputs <= {"AZURE_LOCATION"}, inputs & outputs
