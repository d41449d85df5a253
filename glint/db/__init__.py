"""The SQL database: models, engine, and one repository module per noun."""
