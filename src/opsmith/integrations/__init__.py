"""opsmith where engineers already work: the MCP server (``opsmith mcp``).

The pre-commit hook (``.pre-commit-hooks.yaml``), the GitHub Action (``action.yml``) and the
container (``Dockerfile``) live at the repository root and call the ``opsmith`` CLI; see
``docs/integrations.md``. Nothing here is imported by ``opsmith --help``.
"""
