// User-assigned identities: one for the function app, one for recoservice. Each gets only the
// roles it needs (rbac.bicep), and both outlive redeployments of the apps that use them.
param location string
param tags object
param functionIdentityName string
param recoserviceIdentityName string

resource functionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: functionIdentityName
  location: location
  tags: tags
}

resource recoserviceIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: recoserviceIdentityName
  location: location
  tags: tags
}

output functionIdentityId string = functionIdentity.id
output functionClientId string = functionIdentity.properties.clientId
output functionPrincipalId string = functionIdentity.properties.principalId
output recoserviceIdentityId string = recoserviceIdentity.id
output recoserviceClientId string = recoserviceIdentity.properties.clientId
output recoservicePrincipalId string = recoserviceIdentity.properties.principalId
output recoserviceIdentityName string = recoserviceIdentity.name
