// Key Vault in RBAC mode holding the upstream subscription key. The function app reads it
// through a Key Vault reference, recoservice through a Container Apps secret reference; both
// with their user-assigned identity (Key Vault Secrets User, rbac.bicep).
param location string
param tags object
param name string
param secretName string
@secure()
param secretValue string
@description('Expiry written on the secret (informational for secrets: reads still work after it); each provision moves it a year ahead.')
param secretExpiry int = dateTimeToEpoch(dateTimeAdd(utcNow(), 'P1Y'))

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the vault answers only Entra ID with RBAC; a default-deny firewall would block azd reading the generated key back from the deployer's machine (main.parameters.json) and the function app's Key Vault reference without a VNet.
  // checkov:skip=CKV_AZURE_189: same reason: public network access is needed for azd on the deployer's machine and for apps outside a VNet; access is RBAC-only.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    value: secretValue
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: secretExpiry
    }
  }
}

output name string = vault.name
output id string = vault.id
// Versionless: the apps pick up a new version of the key without a redeploy.
output secretUri string = '${vault.properties.vaultUri}secrets/${secretName}'
