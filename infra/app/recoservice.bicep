// recoservice as a Container App: its image in a registry it pulls from with its identity, its
// subscription key from Key Vault (secret reference with the identity), HTTPS-only ingress on
// the port the Dockerfile serves, and batch jobs allowed to reach only this deployment's blob
// host. State: stateMode 'ephemeral' keeps SQLite and the built models on an EmptyDir volume
// of the single replica (lost on restart); 'postgres' passes the database and artifacts
// locations for recoservice's --database/--artifacts options (Entra sign-in to PostgreSQL with
// the identity in AZURE_CLIENT_ID) and scales out.
param location string
param tags object
param registryName string
param environmentName string
param name string
param logAnalyticsWorkspaceId string
param identityId string
param identityClientId string
param identityPrincipalId string
@description('Image to run; empty: a public placeholder (unhealthy on this port and these probes) until azd deploys the real one.')
param image string
param keySecretUri string
@description('Host batch jobs may read and write (--allow-blob-host).')
param blobHost string
@allowed(['ephemeral', 'postgres'])
param stateMode string
param maxReplicas int
@description('postgres mode: RECOSERVICE_DATABASE.')
param databaseUrl string = ''
@description('postgres mode: RECOSERVICE_ARTIFACTS (a blob container URL).')
param artifactsUrl string = ''
@description('Subnet for the environment (VNet mode); empty: no VNet.')
param infrastructureSubnetId string = ''

// Must agree with recoservice/Dockerfile (tests/infra checks both against `serve --help`).
var port = 8080
var stateDir = '/var/lib/recoservice'
var placeholderImage = 'mcr.microsoft.com/k8se/quickstart:latest'
var usePlaceholder = empty(image)
var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
var postgresEnv = (stateMode == 'postgres') ? [
  { name: 'RECOSERVICE_DATABASE', value: databaseUrl }
  { name: 'RECOSERVICE_ARTIFACTS', value: artifactsUrl }
  // No database password exists: each connection signs in with an Entra token.
  { name: 'RECOSERVICE_DATABASE_AUTH', value: 'entra' }
] : []

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_139: azd pushes (or remote-builds) the image from the deployer's machine, which needs the public endpoint; pulls and pushes need Entra ID (admin user and anonymous pull off).
  // checkov:skip=CKV_AZURE_163: image vulnerability scanning is Microsoft Defender for Containers, a paid subscription-level plan the deployer decides on; not part of this template.
  // checkov:skip=CKV_AZURE_166: quarantine needs the Premium SKU; one image built from this repository by azd does not justify its cost.
  name: registryName
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identityId, acrPullRoleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource containerAppsEnvironment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    // Logs go through diagnostic settings: no workspace shared key is handed to the environment.
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
    vnetConfiguration: empty(infrastructureSubnetId) ? null : {
      infrastructureSubnetId: infrastructureSubnetId
      internal: false
    }
  }
}

resource environmentLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: containerAppsEnvironment
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'recoservice' })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    managedEnvironmentId: containerAppsEnvironment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: port
        transport: 'auto'
        allowInsecure: false
      }
      registries: [
        {
          server: registry.properties.loginServer
          identity: identityId
        }
      ]
      secrets: [
        {
          name: 'subscription-key'
          keyVaultUrl: keySecretUri
          identity: identityId
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'recoservice'
          // Only the image differs between the first provision and later ones: azd deploy swaps
          // the image alone, so args and probes must already be the real ones. A later provision
          // then changes nothing in the template and starts no new revision (which, in ephemeral
          // mode, would drop the state).
          image: usePlaceholder ? placeholderImage : image
          // Replaces the Dockerfile's CMD (its ENTRYPOINT keeps --host and --port).
          args: [
            '--state-dir'
            stateDir
            '--allow-blob-host'
            blobHost
          ]
          env: concat([
            { name: 'RECOSERVICE_KEYS', secretRef: 'subscription-key' }
            { name: 'AZURE_CLIENT_ID', value: identityClientId }
            // uvicorn trusts X-Forwarded-Proto from the ingress proxy, so the URLs recoservice
            // builds (Operation-Location) say https, not the plain http the proxy forwards.
            { name: 'FORWARDED_ALLOW_IPS', value: '*' }
          ], postgresEnv)
          resources: {
            cpu: json('1.0')
            memory: '2Gi'
          }
          probes: [
            {
              type: 'Liveness'
              httpGet: { path: '/openapi.json', port: port }
              periodSeconds: 30
            }
            {
              type: 'Readiness'
              httpGet: { path: '/openapi.json', port: port }
              periodSeconds: 10
            }
          ]
          volumeMounts: [
            {
              volumeName: 'state'
              mountPath: stateDir
            }
          ]
        }
      ]
      volumes: [
        {
          name: 'state'
          storageType: 'EmptyDir'
        }
      ]
      scale: {
        minReplicas: 1
        // SQLite on an EmptyDir is one replica's own state: exactly one outside postgres mode.
        maxReplicas: (stateMode == 'postgres') ? maxReplicas : 1
      }
    }
  }
  dependsOn: [acrPull]
}

output url string = 'https://${app.properties.configuration.ingress.fqdn}'
output registryLoginServer string = registry.properties.loginServer
