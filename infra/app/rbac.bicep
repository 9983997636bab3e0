// Role assignments. The function app's identity gets data-plane roles on its storage (blob
// owner: deployment package, batch containers, user delegation keys for SAS; queue and table:
// Durable Functions), publishes telemetry to Application Insights, and reads the key secret.
// recoservice's identity reads the secret, pulls its image, and (postgres mode) writes its
// artifacts container. Role ids: learn.microsoft.com/azure/role-based-access-control/built-in-roles.
param storageAccountName string
param applicationInsightsName string
param keyVaultName string
param appPrincipalId string
@description('Empty when recoservice is not deployed.')
param recoservicePrincipalId string = ''
@description('Container recoservice keeps its artifacts in; empty outside postgres mode.')
param artifactsContainerName string = ''
param principalId string = ''
param principalType string = 'User'

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}
var withRecoservice = !empty(recoservicePrincipalId)
var withArtifacts = withRecoservice && !empty(artifactsContainerName)
var withDeployer = !empty(principalId)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource artifactsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = if (withArtifacts) {
  name: '${storageAccountName}/default/${artifactsContainerName}'
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// ---- the function app ----

resource appBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- recoservice ----

resource recoSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withRecoservice) {
  name: guid(vault.id, recoservicePrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: recoservicePrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource recoArtifactsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withArtifacts) {
  name: guid(artifactsContainer.id, recoservicePrincipalId, roles.storageBlobDataContributor)
  scope: artifactsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: recoservicePrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- the deployer (azd's AZURE_PRINCIPAL_ID): upload requests files, read results ----

resource deployerBlobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withDeployer) {
  name: guid(storage.id, principalId, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: principalId
    principalType: principalType
  }
}
