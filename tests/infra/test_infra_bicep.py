"""infra/ as code: every Bicep file parses, the function app gets every setting recobatch needs,
its identity gets the roles identity-based storage needs, and no key or connection string exists.

Read from the Bicep itself (pycep-parser), and from recobatch.settings.SETTINGS at test time,
so a new required setting fails here until the deployment sets it.
"""

from __future__ import annotations

import re

import pytest
from infra_helpers import (
    INFRA,
    ROOT,
    accessor_path,
    bicep_files,
    body,
    object_keys,
    parse,
    resources_of_type,
    variable,
)
from pycep import BicepParser

from recobatch.settings import SETTINGS

# Built-in role ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"

# The function app's identity must hold each role on this resource (a symbol in rbac.bicep).
APP_ROLES = {
    STORAGE_BLOB_DATA_OWNER: "storage",
    STORAGE_QUEUE_DATA_CONTRIBUTOR: "storage",
    STORAGE_TABLE_DATA_CONTRIBUTOR: "storage",
    MONITORING_METRICS_PUBLISHER: "applicationInsights",
    KEY_VAULT_SECRETS_USER: "vault",
}

# Identity-based host storage, service-URI form with a user-assigned identity. It stands in for
# the connection-string setting and the account-name form (other ways to say the same).
IDENTITY_STORAGE = ("AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__queueServiceUri",
                    "AzureWebJobsStorage__tableServiceUri", "AzureWebJobsStorage__credential",
                    "AzureWebJobsStorage__clientId")
# Other forms of the storage connection than the one deployed (identity-based with service
# URIs, checked below): a connection string, the account-name form, and the service principal
# that is for local development only.
STORAGE_ALTERNATIVES = {"AzureWebJobsStorage", "AzureWebJobsStorage__accountName",
                        "AzureWebJobsStorage__tenantId", "AzureWebJobsStorage__clientSecret"}
# Settings without a default that the deployment leaves unset on purpose: the completion
# notification is off until the operator sets it (functionExtraAppSettings), and Azure sets
# WEBSITE_SITE_NAME itself; RECOBATCH_TRACE_FILE is for local diagnosis and tests.
OFF_UNLESS_SET = {"BATCH_NOTIFY_URL", "BATCH_NOTIFY_SECRET", "WEBSITE_SITE_NAME",
                  "RECOBATCH_TRACE_FILE"}

FORBIDDEN = ("listKeys", "AccountKey=", "DefaultEndpointsProtocol", "SharedAccessKey=",
             "primarySharedKey")


def function_app_settings() -> dict[str, object]:
    """Every app setting the deployment gives the function app: main.bicep's plus the module's."""
    module = parse("main.bicep")["modules"]["functionApp"]["config"]
    settings = object_keys(module["params"]["appSettings"])
    resource = resources_of_type(parse("app/function.bicep"), "Microsoft.Web/sites/config")
    (config,) = resource.values()
    assert config["config"]["name"] == "appsettings"
    settings.update(object_keys(config["config"]["properties"]))
    return settings


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path):
    parsed = BicepParser().parse(file_path=path)

    assert parsed["resources"] or parsed["modules"], f"{path} declares nothing"


def test_every_module_main_bicep_uses_exists():
    modules = parse("main.bicep")["modules"]

    for name, module in modules.items():
        assert (INFRA / module["detail"]["path"]).is_file(), f"module {name}"


def test_every_required_app_setting_is_set():
    settings = function_app_settings()
    required = [spec.name for spec in SETTINGS
                if spec.default is None and spec.name not in OFF_UNLESS_SET]

    missing = [name for name in required
               if name not in settings and name not in STORAGE_ALTERNATIVES]
    assert missing == [], f"the function app lacks {missing}"


def test_host_storage_is_identity_based_with_the_user_assigned_identity():
    settings = function_app_settings()

    for name in IDENTITY_STORAGE:
        assert name in settings, name
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert not STORAGE_ALTERNATIVES & settings.keys(), "no connection string or account name"


def test_deployment_switches_the_trigger_to_event_grid_and_names_the_task_hub():
    settings = function_app_settings()

    assert settings["BATCH_TRIGGER_SOURCE"] == "EventGrid"
    assert settings["TASKHUB_NAME"] == "taskHubName"
    # Binding expressions (%BATCH_INPUT_CONTAINER%) see app settings only, not library defaults.
    assert settings["BATCH_INPUT_CONTAINER"] == "inputContainerName"
    assert variable(parse("main.bicep"), "inputContainerName") == "batch-input"


def test_subscription_key_is_a_key_vault_reference_resolved_with_the_app_identity():
    settings = function_app_settings()
    (site,) = resources_of_type(parse("app/function.bicep"), "Microsoft.Web/sites").values()

    assert settings["RECO_SUBSCRIPTION_KEY"].startswith("@Microsoft.KeyVault(SecretUri=")
    assert site["config"]["properties"]["keyVaultReferenceIdentity"] == "identityId"
    assert site["config"]["identity"]["type"] == "UserAssigned"
    vault = resources_of_type(parse("app/keyvault.bicep"), "Microsoft.KeyVault/vaults")
    (vault_config,) = vault.values()
    assert vault_config["config"]["properties"]["enableRbacAuthorization"] is True


def test_function_app_runs_python_311_on_flex_consumption():
    parsed = parse("app/function.bicep")
    (plan,) = resources_of_type(parsed, "Microsoft.Web/serverfarms").values()
    (site,) = resources_of_type(parsed, "Microsoft.Web/sites").values()

    assert plan["config"]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    runtime = site["config"]["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "3.11"}
    storage = site["config"]["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert storage["authentication"]["type"] == "UserAssignedIdentity"


def app_role_assignments() -> dict[str, str]:
    """Role id -> scope symbol of every assignment in rbac.bicep to ``appPrincipalId``."""
    parsed = parse("app/rbac.bicep")
    roles = variable(parsed, "roles")
    found: dict[str, str] = {}
    for res in resources_of_type(parsed, "Microsoft.Authorization/roleAssignments").values():
        config, condition = body(res)
        if config["properties"]["principalId"] != "appPrincipalId":
            continue
        assert condition is None, "the app's roles are always assigned"
        role_id = config["properties"]["roleDefinitionId"]["function"]["parameters"]
        path = accessor_path(role_id["resource_name_1"])
        assert path[0] == "roles", path
        found[roles[path[1]]] = config["scope"]
    return found


def test_function_app_identity_holds_every_role_it_needs():
    assigned = app_role_assignments()

    for role, scope in APP_ROLES.items():
        assert role in assigned, f"role {role} is not assigned to the app identity"
        assert assigned[role] == scope, role


def test_the_identity_given_roles_is_the_one_the_function_app_runs_as():
    modules = parse("main.bicep")["modules"]

    rbac = modules["rbac"]["config"]["params"]
    function = modules["functionApp"]["config"]["params"]
    assert accessor_path(rbac["appPrincipalId"]) == ["identities", "outputs",
                                                     "functionPrincipalId"]
    assert accessor_path(function["identityId"]) == ["identities", "outputs",
                                                     "functionIdentityId"]
    assert accessor_path(function["identityClientId"]) == ["identities", "outputs",
                                                           "functionClientId"]


def test_application_insights_accepts_entra_auth_only():
    (insights,) = resources_of_type(parse("app/monitoring.bicep"),
                                    "Microsoft.Insights/components").values()

    assert insights["config"]["properties"]["DisableLocalAuth"] is True
    settings = function_app_settings()
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD")


def test_storage_account_takes_no_shared_key_and_no_anonymous_reads():
    (account,) = resources_of_type(parse("app/storage.bicep"),
                                   "Microsoft.Storage/storageAccounts").values()

    properties = account["config"]["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True


def test_batch_containers_exist_and_work_blobs_expire_after_a_parameter():
    main = parse("main.bicep")
    names = [variable(main, n) for n in variable(main, "batchContainerNames")]
    policy = resources_of_type(parse("app/storage.bicep"),
                               "Microsoft.Storage/storageAccounts/managementPolicies")
    (rule,) = next(iter(policy.values()))["config"]["properties"]["policy"]["rules"]

    assert {"batch-input", "batch-output", "batch-work"} <= set(names)
    assert rule["definition"]["filters"]["prefixMatch"] == ["${workContainerName}/"]
    delete = rule["definition"]["actions"]["baseBlob"]["delete"]
    assert delete == {"daysAfterModificationGreaterThan": "workRetentionDays"}
    params = main["modules"]["storage"]["config"]["params"]
    assert params["workRetentionDays"] == "workRetentionDays"
    assert "workRetentionDays" in main["parameters"]


def test_no_key_or_connection_string_anywhere_in_infra():
    offenders = []
    for path in sorted(p for p in INFRA.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(ROOT)}: {word}" for word in FORBIDDEN
                      if word.lower() in text.lower()]

    assert offenders == []


def test_forbidden_words_would_be_found():
    # The scan above is case-insensitive on plain text: a listKeys() call in any casing counts.
    sample = "var k = storage.LISTKEYS().keys[0].value"

    assert any(word.lower() in sample.lower() for word in FORBIDDEN)


def test_recoservice_gets_its_key_from_key_vault_with_its_identity():
    (app,) = resources_of_type(parse("app/recoservice.bicep"),
                               "Microsoft.App/containerApps").values()
    configuration = app["config"]["properties"]["configuration"]

    (secret,) = configuration["secrets"]
    assert set(secret) == {"name", "keyVaultUrl", "identity"}
    assert secret["identity"] == "identityId"
    assert configuration["ingress"]["allowInsecure"] is False


def test_recoservice_runs_one_replica_unless_its_state_is_in_postgres():
    parsed = parse("app/recoservice.bicep")
    (app,) = resources_of_type(parsed, "Microsoft.App/containerApps").values()
    scale = app["config"]["properties"]["template"]["scale"]

    assert scale["minReplicas"] == 1
    conditional = scale["maxReplicas"]["operator"]
    assert conditional["type"] == "conditional"
    assert conditional["operands"]["false_value"] == 1
    main_params = parse("main.bicep")["parameters"]
    assert main_params["recoserviceStateMode"]["default"] == "ephemeral"


def test_function_app_uses_recoservice_unless_an_endpoint_is_given():
    settings = function_app_settings()

    endpoint = settings["RECO_ENDPOINT"]["operator"]
    assert endpoint["operands"]["condition"] == "deployRecoservice"
    assert endpoint["operands"]["true_value"].endswith("/recommendations/v4.0")
    assert endpoint["operands"]["false_value"] == "recoEndpoint"


def test_every_checkov_skip_gives_a_reason():
    skip = re.compile(r"checkov:skip=([A-Z0-9_]+)(.*)")
    for path in bicep_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            match = skip.search(line)
            if match:
                reason = match.group(2).lstrip(":").strip()
                assert len(reason) >= 20, f"{path.name}: {match.group(1)} has no reason"


def module_calls() -> list[tuple[str, dict, dict]]:
    """``(symbol, params given, module file parsed)`` for every module main.bicep calls."""
    calls = []
    for name, module in parse("main.bicep")["modules"].items():
        config, _condition = body(module)
        if "loop_type" in config:  # [for ...: {...}]
            config = config["config"]
        calls.append((name, config["params"], parse(module["detail"]["path"])))
    return calls


def test_main_passes_every_required_parameter_and_no_unknown_one():
    # What `bicep build` would report as a missing or unknown module parameter.
    for name, given, module in module_calls():
        declared = module["parameters"]
        required = {p for p, spec in declared.items() if "default" not in spec}
        assert set(given) <= set(declared), f"{name}: unknown {set(given) - set(declared)}"
        assert required <= set(given), f"{name}: missing {required - set(given)}"


def test_every_module_output_main_reads_exists():
    text = (INFRA / "main.bicep").read_text(encoding="utf-8")
    modules = {name: module for name, _given, module in module_calls()}

    used = re.findall(r"\b([A-Za-z]+)\.outputs\.([A-Za-z]+)", text)
    assert used
    for symbol, output in used:
        assert output in modules[symbol]["outputs"], f"{symbol}.outputs.{output}"


def test_the_cache_table_exists_from_a_parameter_and_is_the_apps_setting():
    main = parse("main.bicep")
    storage = parse("app/storage.bicep")
    (tables,) = resources_of_type(
        storage, "Microsoft.Storage/storageAccounts/tableServices/tables").values()
    params = main["modules"]["storage"]["config"]["params"]

    assert main["parameters"]["cacheTableName"]["default"] == "recocache"
    assert "cacheTableName" in str(params["tableNames"])
    assert tables["config"]["loop_type"]["detail"] == {"item_name": "tableName",
                                                       "array_name": "tableNames"}
    assert tables["config"]["config"]["name"] == "tableName"
    assert function_app_settings()["BATCH_CACHE_TABLE"] == "cacheTableName"
    # Upserts and reads of the cache need the table data role on the account.
    assert app_role_assignments()[STORAGE_TABLE_DATA_CONTRIBUTOR] == "storage"
