"""The REST API: one module per endpoint group, thin handlers over the domain modules."""
from corral.api import events, internal, misc, operations, profiles, projects, root

ENDPOINT_MODULES = [root, profiles, projects, operations, events, misc, internal]
