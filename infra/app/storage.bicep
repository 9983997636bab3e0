// The storage account: batch containers, the function app's deployment container, the
// Durable Functions task hub (queues and tables) and the recommendations cache table. Shared
// keys are off: every client signs in with Entra ID, and SAS tokens for the batch jobs are
// user-delegation SAS.
param location string
param tags object
param name string
param containerNames array
param workContainerName string
param workRetentionDays int
param vnetEnabled bool
@description('Tables besides the task hub\'s (the recommendations cache); empty: none.')
param tableNames array = []

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the firewall denies by default when vnetEnabled (defaultAction below); without a VNet the Flex Consumption app has no fixed outbound addresses to allow, and the account accepts only Entra ID (shared keys off).
  // checkov:skip=CKV_AZURE_206: LRS keeps the sample cheap and works in every region; inputs are re-uploadable and outputs re-creatable. Use Standard_ZRS or GZRS for production data.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    dnsEndpointType: 'Standard'
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: {
      // Event Grid reads blob events as a trusted Azure service, even with the VNet on.
      bypass: 'AzureServices'
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in containerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

// The recommendations cache (recobatch/cache.py): the app upserts its rows and answers lookups.
resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

// Chunk inputs and outputs are only needed while a run is in flight and for a look afterwards.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-old-work-blobs'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: ['blockBlob', 'appendBlob']
              prefixMatch: ['${workContainerName}/']
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: workRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [containers]
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
// recoservice's --allow-blob-host: the host batch jobs read from and write to.
output blobHost string = '${storage.name}.blob.${environment().suffixes.storage}'
