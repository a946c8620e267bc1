"""Storage: settings, the async engine, the schema and its migrations, and the stats queries."""
