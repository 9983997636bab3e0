// The function app on Flex Consumption (FC1), Python 3.11, with a user-assigned identity for
// storage (AzureWebJobsStorage__*), the deployment package, Application Insights and Key Vault
// references. The app settings resource owns every setting: the caller passes the recobatch
// ones, this module adds the host's.
param location string
param tags object
param name string
param planName string
param identityId string
param identityClientId string
param applicationInsightsName string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param maximumInstanceCount int
param instanceMemoryMB int
@description('Subnet for VNet integration (delegated to Microsoft.App/environments); empty: none.')
param subnetId string = ''
@description('recobatch settings (recobatch/settings.py).')
param appSettings object

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption is limited to some regions and needs always-ready instances (a fixed cost); batch runs are durable and resume after a zone outage.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the app must take Event Grid's webhook deliveries and the HTTP API (function keys) from the internet.
  // checkov:skip=CKV_AZURE_17: callers authenticate with function keys; Event Grid cannot present a client certificate to the blob extension's webhook.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero by design; always-ready instances would be a fixed cost, and Durable Functions resume runs on any instance.
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no health check setting; the platform manages instance health.
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // @Microsoft.KeyVault(...) settings resolve with this identity, not a system-assigned one.
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // This resource holds app settings only; checkov reads every sites/config as web server configuration:
  // checkov:skip=CKV_AZURE_13: not web server configuration (app settings); callers authenticate with function keys.
  // checkov:skip=CKV_AZURE_63: not web server configuration (app settings); the app logs to Application Insights.
  // checkov:skip=CKV_AZURE_65: not web server configuration (app settings); detailed error pages are an IIS feature, and this is a Linux Python app.
  // checkov:skip=CKV_AZURE_66: not web server configuration (app settings); failed request tracing is an IIS feature, and this is a Linux Python app.
  // checkov:skip=CKV_AZURE_80: not web server configuration (app settings); this is a Python app, no .NET Framework.
  // checkov:skip=CKV_AZURE_88: not web server configuration (app settings); the app keeps no files: state is in blob, queue and table storage.
  // checkov:skip=CKV_AZURE_222: not web server configuration (app settings); see the skip on the site itself.
  parent: functionApp
  name: 'appsettings'
  properties: union(appSettings, {
    // Identity-based host storage: blob (triggers, leases, deployment), queue and table
    // (Durable Functions task hub), signed in as the user-assigned identity.
    AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
    AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
    AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // DefaultAzureCredential in recobatch picks the user-assigned identity from this.
    AZURE_CLIENT_ID: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  })
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
