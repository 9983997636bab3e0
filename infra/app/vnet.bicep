// Optional VNet (vnetEnabled): private endpoints for storage (and PostgreSQL), outbound
// integration for the function app, and the Container Apps environment's subnet.
param location string
param tags object
param name string

resource nsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: 'nsg-${name}'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        // recoservice's external ingress (HTTPS only) is served from its subnet.
        name: 'allow-https-inbound-to-recoservice'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'Internet'
          sourcePortRange: '*'
          destinationAddressPrefix: '10.0.4.0/23'
          destinationPortRange: '443'
        }
      }
    ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: ['10.0.0.0/16']
    }
    subnets: [
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: '10.0.1.0/24'
          privateEndpointNetworkPolicies: 'Disabled'
          networkSecurityGroup: { id: nsg.id }
        }
      }
      {
        name: 'function-app'
        properties: {
          addressPrefix: '10.0.2.0/24'
          networkSecurityGroup: { id: nsg.id }
          delegations: [
            {
              name: 'flex-consumption'
              properties: { serviceName: 'Microsoft.App/environments' }
            }
          ]
        }
      }
      {
        name: 'recoservice'
        properties: {
          addressPrefix: '10.0.4.0/23'
          networkSecurityGroup: { id: nsg.id }
          delegations: [
            {
              name: 'container-apps'
              properties: { serviceName: 'Microsoft.App/environments' }
            }
          ]
        }
      }
    ]
  }
}

output id string = vnet.id
output privateEndpointSubnetId string = '${vnet.id}/subnets/private-endpoints'
output appSubnetId string = '${vnet.id}/subnets/function-app'
output recoserviceSubnetId string = '${vnet.id}/subnets/recoservice'
