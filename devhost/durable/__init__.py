"""The host side of Durable Functions 1.x for devhost: store, episodes, activities, client API."""
