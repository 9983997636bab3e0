// recobatch on Azure: the function app (Flex Consumption), its storage, Key Vault, Event Grid
// topic, monitoring, and recoservice as a Container App. `azd up` provisions this file; the
// Event Grid subscription is created after code deploy by scripts/postdeploy.sh (or .ps1).
// Everything authenticates with managed identities: no storage key or connection string.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; with the subscription and location it seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region of every resource.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of whoever runs azd (azd sets AZURE_PRINCIPAL_ID): gets Storage Blob Data Contributor to upload requests files and read results. Empty: no role for the deployer.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal'])
@description('Kind of principal principalId is.')
param principalType string = 'User'

@description('Resource group name; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Integrate the function app and recoservice with a VNet and reach storage (and PostgreSQL) through private endpoints only.')
param vnetEnabled bool = false

@minValue(1)
@description('Days after which the lifecycle rule deletes blobs in the work container (chunk inputs and outputs).')
param workRetentionDays int = 7

@description('Durable Functions task hub name (host.json reads %TASKHUB_NAME%): letters and digits, 3-45 characters.')
@minLength(3)
@maxLength(45)
param taskHubName string = 'RecobatchHub'

@description('An existing Recommendations v4-compatible endpoint (ending with /recommendations/v4.0). Empty: deploy recoservice as a Container App and use it.')
param recoEndpoint string = ''

@secure()
@minLength(1)
@description('Subscription key for the upstream (RECO_SUBSCRIPTION_KEY in the azd environment; scripts/preprovision generates one for recoservice). Stored in Key Vault only.')
param recoSubscriptionKey string

@description('RECO_MODEL_ID: the model the batch jobs score with. Known only after a model is built: set it with `azd env set RECO_MODEL_ID <id>` and run `azd provision` again.')
param recoModelId string = ''

@description('RECO_BUILD_ID: a build id; empty uses the model\'s active build.')
param recoBuildId string = ''

@allowed(['ItemRecommend', 'UserRecommend'])
@description('RECO_API_NAME.')
param recoApiName string = 'ItemRecommend'

@description('More app settings for the function app (name: value). The deployment owns the app settings: values set by hand in the portal are replaced on the next provision, so put them here.')
param functionExtraAppSettings object = {}

@minValue(40)
@maxValue(1000)
@description('Flex Consumption: most instances the app scales out to.')
param functionMaximumInstanceCount int = 40

@allowed([512, 2048, 4096])
@description('Flex Consumption: memory of each instance in MB.')
param functionInstanceMemoryMB int = 2048

@allowed(['ephemeral', 'postgres'])
@description('recoservice state. ephemeral: one replica, SQLite and models on an EmptyDir volume (lost on restart). postgres: Azure Database for PostgreSQL plus a blob artifacts container (recoservice --database/--artifacts), minReplicas 1 up to recoserviceMaxReplicas.')
param recoserviceStateMode string = 'ephemeral'

@minValue(2)
@maxValue(10)
@description('Most recoservice replicas in postgres mode (ephemeral mode always runs exactly one).')
param recoserviceMaxReplicas int = 3

@description('Recommendations cache table (app setting BATCH_CACHE_TABLE; the app\'s identity holds Storage Table Data Contributor on the account). Empty: no cache.')
param cacheTableName string = 'recocache'

@description('recoservice image; azd fills it in after the first deploy (SERVICE_RECOSERVICE_IMAGE_NAME). Empty: a public placeholder image until `azd deploy` pushes the real one.')
param recoserviceImage string = ''

var tags = { 'azd-env-name': environmentName }
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var deployRecoservice = empty(recoEndpoint)
var usePostgres = deployRecoservice && (recoserviceStateMode == 'postgres')

// Container names: the app settings below and the storage module both read them from here.
var inputContainerName = 'batch-input'
var outputContainerName = 'batch-output'
var workContainerName = 'batch-work'
var artifactsContainerName = 'reco-artifacts'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var secretName = 'reco-subscription-key'
var batchContainerNames = [inputContainerName, outputContainerName, workContainerName, deploymentContainerName]
var containerNames = concat(batchContainerNames, usePostgres ? [artifactsContainerName] : [])
// Durable Functions needs blob, queue and table; each gets a private endpoint in a VNet.
var privateStorageServices = vnetEnabled ? ['blob', 'queue', 'table'] : []

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identities 'app/identities.bicep' = {
  name: 'identities'
  scope: rg
  params: {
    location: location
    tags: tags
    functionIdentityName: 'id-func-${resourceToken}'
    recoserviceIdentityName: 'id-reco-${resourceToken}'
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module network 'app/vnet.bicep' = if (vnetEnabled) {
  name: 'network'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'vnet-${resourceToken}'
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'st${resourceToken}'
    containerNames: containerNames
    workContainerName: workContainerName
    workRetentionDays: workRetentionDays
    vnetEnabled: vnetEnabled
    tableNames: empty(cacheTableName) ? [] : [cacheTableName]
  }
}

module storagePrivateEndpoints 'app/private-endpoint.bicep' = [for service in privateStorageServices: {
  name: 'pe-storage-${service}'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'pe-${service}-${resourceToken}'
    subnetId: vnetEnabled ? network.outputs.privateEndpointSubnetId : ''
    virtualNetworkId: vnetEnabled ? network.outputs.id : ''
    serviceId: storage.outputs.id
    groupId: service
    privateDnsZoneName: 'privatelink.${service}.${environment().suffixes.storage}'
  }
}]

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'kv-${resourceToken}'
    secretName: secretName
    secretValue: recoSubscriptionKey
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    appPrincipalId: identities.outputs.functionPrincipalId
    recoservicePrincipalId: deployRecoservice ? identities.outputs.recoservicePrincipalId : ''
    artifactsContainerName: usePostgres ? artifactsContainerName : ''
    principalId: principalId
    principalType: principalType
  }
}

module eventGrid 'app/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'evgt-${resourceToken}'
    storageAccountId: storage.outputs.id
  }
}

module postgres 'app/postgres.bicep' = if (usePostgres) {
  name: 'postgres'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'psql-${resourceToken}'
    databaseName: 'recoservice'
    adminPrincipalId: identities.outputs.recoservicePrincipalId
    adminPrincipalName: identities.outputs.recoserviceIdentityName
    vnetEnabled: vnetEnabled
  }
}

module postgresPrivateEndpoint 'app/private-endpoint.bicep' = if (usePostgres && vnetEnabled) {
  name: 'pe-postgres'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'pe-psql-${resourceToken}'
    subnetId: vnetEnabled ? network.outputs.privateEndpointSubnetId : ''
    virtualNetworkId: vnetEnabled ? network.outputs.id : ''
    serviceId: usePostgres ? postgres.outputs.id : ''
    groupId: 'postgresqlServer'
    privateDnsZoneName: 'privatelink.postgres.database.azure.com'
  }
}

module recoservice 'app/recoservice.bicep' = if (deployRecoservice) {
  name: 'recoservice'
  scope: rg
  dependsOn: [rbac] // the app reads its key from the vault and pulls from the registry at creation
  params: {
    location: location
    tags: tags
    registryName: 'cr${resourceToken}'
    environmentName: 'cae-${resourceToken}'
    name: 'ca-reco-${resourceToken}'
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    identityId: identities.outputs.recoserviceIdentityId
    identityClientId: identities.outputs.recoserviceClientId
    identityPrincipalId: identities.outputs.recoservicePrincipalId
    image: recoserviceImage
    keySecretUri: keyVault.outputs.secretUri
    blobHost: storage.outputs.blobHost
    stateMode: recoserviceStateMode
    maxReplicas: recoserviceMaxReplicas
    databaseUrl: usePostgres ? 'postgresql://${identities.outputs.recoserviceIdentityName}@${postgres.outputs.fqdn}:5432/recoservice?sslmode=require' : ''
    artifactsUrl: usePostgres ? '${storage.outputs.blobEndpoint}${artifactsContainerName}' : ''
    infrastructureSubnetId: vnetEnabled ? network.outputs.recoserviceSubnetId : ''
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  dependsOn: [rbac]
  params: {
    location: location
    tags: tags
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    identityId: identities.outputs.functionIdentityId
    identityClientId: identities.outputs.functionClientId
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    subnetId: vnetEnabled ? network.outputs.appSubnetId : ''
    // recobatch/settings.py: every setting without a default, plus those a deployment changes.
    // Storage (AzureWebJobsStorage__*) and monitoring settings are added in the module.
    appSettings: union(functionExtraAppSettings, {
      RECO_ENDPOINT: deployRecoservice ? '${recoservice.outputs.url}/recommendations/v4.0' : recoEndpoint
      RECO_SUBSCRIPTION_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.secretUri})'
      RECO_MODEL_ID: recoModelId
      RECO_BUILD_ID: recoBuildId
      RECO_API_NAME: recoApiName
      BATCH_INPUT_CONTAINER: inputContainerName
      BATCH_OUTPUT_CONTAINER: outputContainerName
      BATCH_WORK_CONTAINER: workContainerName
      BATCH_TRIGGER_SOURCE: 'EventGrid'
      BATCH_CACHE_TABLE: cacheTableName
      TASKHUB_NAME: taskHubName
    })
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = functionApp.outputs.defaultHostName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output BATCH_INPUT_CONTAINER string = inputContainerName
output BATCH_OUTPUT_CONTAINER string = outputContainerName
output EVENT_GRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = deployRecoservice ? recoservice.outputs.registryLoginServer : ''
output RECO_ENDPOINT string = deployRecoservice ? '${recoservice.outputs.url}/recommendations/v4.0' : recoEndpoint
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
