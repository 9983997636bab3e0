// Azure Database for PostgreSQL Flexible Server for recoservice's state (recoserviceStateMode
// = postgres). Password sign-in is off: recoservice's user-assigned identity is the server's
// Entra administrator and signs in with an Entra token as its password (user name = the
// identity's name), so no database secret exists anywhere.
param location string
param tags object
param name string
param databaseName string
param adminPrincipalId string
param adminPrincipalName string
param vnetEnabled bool

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard_B1ms'
    tier: 'Burstable'
  }
  properties: {
    version: '16'
    storage: {
      storageSizeGB: 32
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: 7
      geoRedundantBackup: 'Enabled'
    }
    highAvailability: {
      mode: 'Disabled'
    }
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: 'Disabled'
      tenantId: tenant().tenantId
    }
    network: {
      publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    }
  }
}

resource admin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = {
  parent: server
  name: adminPrincipalId
  properties: {
    principalType: 'ServicePrincipal'
    principalName: adminPrincipalName
    tenantId: tenant().tenantId
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
  dependsOn: [admin] // the server takes one change at a time
}

// Without a VNet, Container Apps reach the server over its public endpoint from Azure
// addresses; only Entra tokens for the administrator identity are accepted.
resource allowAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = if (!vnetEnabled) {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

output id string = server.id
output fqdn string = server.properties.fullyQualifiedDomainName
