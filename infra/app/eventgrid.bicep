// Event Grid system topic on the storage account. Its subscription (BlobCreated in the input
// container -> the blob extension's webhook) needs the blobs_extension system key, which exists
// only once the code is deployed: scripts/postdeploy.sh (.ps1) creates it.
param location string
param tags object
param name string
param storageAccountId string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: storageAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output name string = topic.name
