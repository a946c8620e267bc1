"""The asyncio worker daemon: consumer loops that move events from Redis into SQL in batches."""
