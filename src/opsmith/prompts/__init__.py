"""Versioned prompt templates: YAML files loaded, validated, rendered to messages and run.

See :mod:`opsmith.prompts._template` for the file format. Built-ins live in
``templates/`` beside this file; ``$OPSMITH_HOME/prompts/*.yaml`` override them by id.
"""

from opsmith.prompts._template import (
    Example,
    Params,
    PromptTemplate,
    list_templates,
    load_template,
    read_template,
    run_template,
)

__all__ = [
    "Example",
    "Params",
    "PromptTemplate",
    "list_templates",
    "load_template",
    "read_template",
    "run_template",
]
