"""Options and configuration: field types, the engine's schemas, validation, TOML files, docs.

`fields` holds the marshmallow field types, `schemas` the engine's option
schemas, `validation` the one function that applies a schema and renders its
errors, `toml` reads ``gkbroad run`` configuration files, `docgen` writes the
option reference from the schemas, and `redact` keeps secrets out of all of it.
"""
